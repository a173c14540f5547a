"""S3 storage: package downloads, index files and uploads, from a directory and a bucket.

    python -m bench.s3 [--clients 16] [--seconds 15] [--no-write]

Services mode as deployed: gunicorn (2 workers x 8 threads), one Celery worker, PostgreSQL
(database ``wharf_bench_s3``), Redis (database 14) and, for the bucket, SeaweedFS started
as the tests start it (``weed server -s3``, tests/s3.py), all on loopback. Each storage
gets a fresh database with a private channel of 1,000 small packages and one of 16 MiB,
imported by Wharf into that storage, and is measured in the download modes it has:

- local: files in WHARF_STORAGE_DIR, sent by gunicorn (sendfile);
- S3 redirect: a package download is a 302 to a presigned URL, which the clients follow
  to SeaweedFS, as conda clients do;
- S3 stream: Wharf reads the object from the bucket and sends it.

``clients`` clients, coroutines on one asyncio loop with one keep-alive connection to
Wharf (and one to the bucket), download one package back to back for ``seconds``; the
index files are requested the same way for half as long. Then packages are uploaded one
at a time, and each of a few more until repodata.json shows it (freshness). The CPU time
of gunicorn, SeaweedFS and the clients is read from /proc for every case.

``make bench BENCH=s3`` runs it; BENCH_S3_CLIENTS and BENCH_S3_SECONDS change the load.
"""

import argparse
import asyncio
import collections
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from . import common, servers
from .load import Connection, ServerClosed, _machine_busy, _processes

DATABASE = "postgres://postgres@127.0.0.1:5432/wharf_bench_s3"
REDIS = "redis://127.0.0.1:6379/14"
DATA = common.ROOT / "var" / "bench-s3"
SUBDIR = "linux-64"
CHANNEL, UPLOAD_CHANNEL = "bench-s3", "bench-s3-uploads"
RECORDS = 1000
LARGE_SIZE = 16 * 1024**2
CLIENTS, SECONDS = 16, 15
SMALL_UPLOADS, LARGE_UPLOADS, FRESHNESS_UPLOADS = 100, 4, 15
WEB_WORKERS, WEB_THREADS = 2, 8
REQUEST_TIMEOUT = 60
# Not counted: with S3, each gunicorn thread's first request makes its boto3 session
# (django-storages keeps one per thread), which put p99 near 1 s in runs without it.
WARM_UP_SECONDS = float(os.environ.get("BENCH_WARM_UP_SECONDS", "2"))  # 0: measure cold
RUNS = {"local": ("stream",), "s3": ("redirect", "stream")}
LABELS = {("local", "stream"): "local", ("s3", "redirect"): "S3 redirect",
          ("s3", "stream"): "S3 stream"}  # fmt: skip
PARTS = {
    "gunicorn": f"gunicorn ({WEB_WORKERS} workers)",
    "seaweedfs": "SeaweedFS",
    "celery": "Celery worker",
    "postgres": "PostgreSQL (this database)",
    "clients": "clients (one asyncio loop)",
    "rest": "rest of the machine",
}


# -- files -----------------------------------------------------------------------------


def large_packages(count):
    """``count`` packages of about 16 MiB (incompressible), made once under var/bench-s3."""
    import rattler_build

    folder = DATA / "packages" / f"large-{count}"
    if not (folder / ".complete").exists():
        shutil.rmtree(folder, ignore_errors=True)
        for number in range(count):
            files = folder / f"_files{number}"
            files.mkdir(parents=True)
            (files / "payload.bin").write_bytes(os.urandom(LARGE_SIZE))
            rattler_build.assemble_package(
                f"bigpkg{number}", "1.0.0", SUBDIR, "h0_0", str(folder), files_dir=files,
                license="MIT", summary="A large benchmark package", compression_level=1,
            )  # fmt: skip
            shutil.rmtree(files)
        (folder / ".complete").write_text("")
    return sorted(folder.glob("*.conda"))


def populate():
    """A fresh database: the download channel (imported and indexed here, into this
    process's storage), an empty upload channel, the owner's token."""
    from accounts.models import ApiToken, User
    from channels_app.lifecycle import create_channel
    from packages_app.index import rebuilds
    from packages_app.intake import importing
    from packages_app.models import PackageFile, SubdirIndex

    common.reset_database()
    small = common.packages(RECORDS)
    large = large_packages(1 + LARGE_UPLOADS)
    owner = User.objects.create_user("bench", "bench@example.org", None)
    channel = create_channel(owner, CHANNEL, private=True)
    create_channel(owner, UPLOAD_CHANNEL, private=True)
    started = time.monotonic()
    result = importing.import_files(channel, [*small, large[0]], uploader=owner)
    if result.refused:
        raise RuntimeError(f"refused: {list(result.refused.items())[:3]}")
    rebuilds.rebuild_until_current(channel.pk, SUBDIR)
    seconds = time.monotonic() - started
    packages = {
        case: PackageFile.objects.get(channel=channel, filename=path.name)
        for case, path in (("small package", small[RECORDS // 2]), ("16 MiB package", large[0]))
    }
    index = SubdirIndex.objects.get(channel=channel, subdir=SUBDIR)
    return {
        "token": ApiToken.create_for(owner, "bench")[1],
        "packages": {case: (p.filename, p.sha256, p.size) for case, p in packages.items()},
        "index_size": index.published_files["repodata.json.zst"]["size"],
        "import_seconds": seconds,
        "small_uploads": small[:SMALL_UPLOADS],
        "large_uploads": large[1:],
        "freshness_uploads": small[SMALL_UPLOADS : SMALL_UPLOADS + FRESHNESS_UPLOADS],
    }


# -- CPU -------------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds of each of :data:`PARTS` between start() and stop(), from /proc."""

    def __init__(self, server_pid, database):
        self.server_pid, self.database = server_pid, database

    def start(self):
        self.first, self.machine = _processes(), _machine_busy()

    def _part(self, pid, processes):
        if pid == os.getpid():
            return "clients"
        argv = processes[pid][1]
        if argv.startswith("postgres:"):
            return "postgres" if f" {self.database} " in argv else "rest"
        ancestor = pid
        while ancestor > 1 and ancestor not in (self.server_pid, os.getpid()):
            ancestor = processes.get(ancestor, (1,))[0]
        if ancestor == self.server_pid:
            return "gunicorn"
        if ancestor == os.getpid():
            return "celery" if "celery" in argv else "seaweedfs" if "weed" in argv else "rest"
        return "rest"

    def stop(self):
        last = _processes()
        parts = dict.fromkeys(PARTS, 0.0)
        for pid, (_, argv, seconds) in last.items():
            if pid in self.first and self.first[pid][1] == argv:
                seconds -= self.first[pid][2]
            parts[self._part(pid, last)] += seconds
        machine = _machine_busy() - self.machine
        parts["rest"] = machine - sum(v for k, v in parts.items() if k != "rest")
        return {**parts, "machine": machine}


# -- clients ---------------------------------------------------------------------------


async def _fetch(wharf, bucket, target, headers, keep=False):
    """GET ``target`` from Wharf, following a redirect to the bucket as conda clients do
    (without the credentials, which a presigned URL carries itself).

    Returns (status, seconds of the Wharf leg, bytes Wharf sent, bytes from the bucket,
    requests, body if ``keep``).
    """
    started = time.monotonic()
    status, answer, body, through = await wharf.request("GET", target, headers, keep=keep)
    leg = time.monotonic() - started
    if status != 302:
        return status, leg, through, 0, 1, body
    url = urlsplit(answer["location"])
    if url.netloc not in bucket:
        bucket[url.netloc] = Connection(url.hostname, url.port)
    status, _, body, size = await bucket[url.netloc].request(
        "GET", f"{url.path}?{url.query}", keep=keep
    )
    return status, leg, through, size, 2, body


async def _client(base, target, headers, stop_at, samples):
    wharf = Connection(*_host_port(base))
    bucket = {}
    try:
        while time.monotonic() < stop_at:
            started = time.monotonic()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    status, leg, through, size, requests, _ = await _fetch(
                        wharf, bucket, target, headers
                    )
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ServerClosed) as exc:
                status, leg, through, size, requests = f"error: {type(exc).__name__}", 0, 0, 0, 1
                for connection in (wharf, *bucket.values()):
                    connection.close()
            samples.append((status, time.monotonic() - started, leg, through, size, requests))
    finally:
        for connection in (wharf, *bucket.values()):
            connection.close()


def _host_port(base):
    url = urlsplit(base)
    return url.hostname, url.port


async def _load(base, target, headers, clients, seconds):
    samples = []
    started = time.monotonic()
    await asyncio.gather(
        *(_client(base, target, headers, started + seconds, samples) for _ in range(clients))
    )
    return samples, time.monotonic() - started


def _summary(samples, elapsed, expected):
    done = [s for s in samples if s[0] == expected]
    latencies = [s[1] for s in done]
    through = sum(s[3] for s in samples)
    return {
        "answers": len(done),
        "per_second": len(done) / elapsed,
        "requests_per_second": sum(s[5] for s in samples) / elapsed,
        "mib_per_second": sum(s[3] + s[4] for s in done) / elapsed / 1024**2,
        "p50": common.median(latencies),
        "p99": common.percentile(latencies, 0.99),
        "wharf_p50": common.median([s[2] for s in done]),
        "wharf_p99": common.percentile([s[2] for s in done], 0.99),
        "through_wharf": through,
        "through_per_answer": through / max(1, len(samples)),
        "other": dict(collections.Counter(str(s[0]) for s in samples if s[0] != expected)),
        "elapsed": elapsed,
    }


def measure_case(base, meter, target, headers, clients, seconds, expected):
    asyncio.run(_load(base, target, headers, clients, WARM_UP_SECONDS))
    meter.start()
    samples, elapsed = asyncio.run(_load(base, target, headers, clients, seconds))
    return {**_summary(samples, elapsed, expected), "cpu": meter.stop()}


async def _once(base, target, headers):
    wharf, bucket = Connection(*_host_port(base)), {}
    try:
        return await _fetch(wharf, bucket, target, headers, keep=True)
    finally:
        for connection in (wharf, *bucket.values()):
            connection.close()


def check_download(base, target, headers, mode, sha256):
    """One download as the clients make it: the right bytes, by the mode's way."""
    status, _, through, _, requests, body = asyncio.run(_once(base, target, headers))
    if status != 200 or requests != (2 if mode == "redirect" else 1):
        raise RuntimeError(f"{target}: status {status} after {requests} requests ({mode})")
    if hashlib.sha256(body).hexdigest() != sha256:
        raise RuntimeError(f"{target}: other bytes than the package's")


# -- uploads ---------------------------------------------------------------------------


def _get(base, path, token, etag=None):
    headers = {"Authorization": f"Bearer {token}"}
    if etag:
        headers["If-None-Match"] = etag
    request = urllib.request.Request(f"{base}/{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        if error.code != 304:
            raise
        return error.code, error.headers, b""


def uploads(base, token, paths, meter):
    """Upload ``paths`` one after another; (seconds of each, CPU)."""
    times = []
    meter.start()
    for path in paths:
        seconds, status = common.timed(servers.upload, base, UPLOAD_CHANNEL, token, path)
        if status != 201:
            raise RuntimeError(f"upload of {path.name}: {status}")
        times.append(seconds)
    return times, meter.stop()


def freshness(base, token, paths):
    """Seconds from the start of each upload until repodata.json lists the package."""
    times = []
    path = f"{UPLOAD_CHANNEL}/{SUBDIR}/repodata.json"
    for package in paths:
        started = time.monotonic()
        status = servers.upload(base, UPLOAD_CHANNEL, token, package)
        if status != 201:
            raise RuntimeError(f"upload of {package.name}: {status}")
        etag = None
        while True:
            status, headers, body = _get(base, path, token, etag)
            if status == 200 and package.name.encode() in body:
                break
            etag = headers.get("ETag")
            if time.monotonic() - started > 60:
                raise TimeoutError(f"{package.name} not in repodata.json after 60 s")
            time.sleep(0.02)
        times.append(time.monotonic() - started)
    return times


# -- one storage, in its own process ---------------------------------------------------


def measure(storage, clients, seconds):
    """Everything for one storage ("local" or "s3"); runs in its own process."""
    with contextlib.ExitStack() as stack:
        env = {}
        if storage == "s3":
            from tests.s3 import seaweedfs

            folder = DATA / "seaweedfs"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            env = stack.enter_context(seaweedfs(folder, servers.free_port)).env()
        common.setup_django(REDIS_URL="", WHARF_DATA_DIR=str(DATA / "data"), **env)
        import redis

        seeded = populate()
        redis.Redis.from_url(REDIS).flushdb()
        token = seeded["token"]
        auth = [f"Authorization: Bearer {token}"]
        result = {key: seeded[key] for key in ("packages", "index_size", "import_seconds")}
        result["cases"] = []
        for mode in RUNS[storage]:
            label = LABELS[storage, mode]
            logs = DATA / "logs" / label.replace(" ", "-")
            shutil.rmtree(logs, ignore_errors=True)
            with servers.wharf(
                workers=WEB_WORKERS, threads=WEB_THREADS, celery_workers=1, celery_concurrency=1,
                logs=logs, REDIS_URL=REDIS, WHARF_DOWNLOAD_MODE=mode,
            ) as (base, server):  # fmt: skip
                meter = CpuMeter(server.pid, DATABASE.rsplit("/", 1)[1])
                for case, (filename, sha256, _) in seeded["packages"].items():
                    target = f"/{CHANNEL}/{SUBDIR}/{filename}"
                    check_download(base, target, auth, mode, sha256)
                    print(f"  {label}: {case}", file=sys.stderr, flush=True)
                    measured = measure_case(base, meter, target, auth, clients, seconds, 200)
                    result["cases"].append({"label": label, "case": case, **measured})
                if mode != RUNS[storage][0]:
                    continue  # index files and uploads do not depend on the download mode
                index = f"{CHANNEL}/{SUBDIR}/repodata.json.zst"
                etag = _get(base, index, token)[1]["ETag"]
                for case, headers, expected in (
                    ("repodata.json.zst 200", auth, 200),
                    ("repodata.json.zst 304", [*auth, f"If-None-Match: {etag}"], 304),
                ):
                    print(f"  {label}: {case}", file=sys.stderr, flush=True)
                    measured = measure_case(
                        base, meter, f"/{index}", headers, clients, seconds // 2, expected
                    )
                    result["cases"].append({"label": label, "case": case, **measured})
                print(f"  {label}: uploads", file=sys.stderr, flush=True)
                result["uploads"] = {
                    "label": label,
                    "small": uploads(base, token, seeded["small_uploads"], meter),
                    "large": uploads(base, token, seeded["large_uploads"], meter),
                    "freshness": freshness(base, token, seeded["freshness_uploads"]),
                }
    return result


def _in_process(storage, clients, seconds):
    env = {**os.environ, "WHARF_BENCH_DATABASE_URL": DATABASE, "WHARF_BENCH_REDIS_URL": REDIS}
    argv = [sys.executable, "-m", "bench.s3", "--measure", storage, "--clients", str(clients),
            "--seconds", str(seconds)]  # fmt: skip
    output = subprocess.run(argv, cwd=common.ROOT, env=env, check=True, stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    return json.loads(output.stdout.strip().splitlines()[-1])


# -- the report ------------------------------------------------------------------------


def _mib(size):
    return f"{size / 1024**2:,.1f} MiB"


def _bytes(size):
    return f"{size:,.0f} B" if size < 10 * 1024 else f"{size / 1024:,.0f} KiB" if size < 1024**2 \
        else _mib(size)  # fmt: skip


def _other(answers):
    return ", ".join(f"{k}: {v}" for k, v in answers.items()) or "none"


def _cpu_cells(cpu):
    return [f"{cpu[part]:.1f}" for part in PARTS] + [f"{cpu['machine']:.1f}"]


def write_report(report, results, clients, seconds, load):
    local, s3 = results["local"], results["s3"]
    cases = [c for r in (local, s3) for c in r["cases"]]
    downloads = [c for c in cases if "package" in c["case"]]
    index = [c for c in cases if c["case"].startswith("repodata")]
    sizes = local["packages"]
    report.text(
        f"S3 storage against a directory (issue 6). Load average (1, 5, 15 min) before the "
        f"run: {load[0]}; after it, the benchmark's own processes included: {load[1]}. "
        f"Services mode on loopback: gunicorn "
        f"{WEB_WORKERS} workers x {WEB_THREADS} threads (gthread), one Celery worker, "
        "PostgreSQL, Redis and SeaweedFS (`weed server -s3`: master, volume, filer and S3 "
        "gateway in one process) share the machine's 2 cores with the clients and with "
        "whatever else runs there. Each storage has its own fresh database with a private "
        f"channel of {RECORDS:,} small packages plus one of 16 MiB in {SUBDIR}, imported by "
        f"Wharf into that storage ({local['import_seconds']:.1f} s into the directory, "
        f"{s3['import_seconds']:.1f} s into the bucket, index included)."
    )
    report.table(
        f"S3: package downloads ({clients} clients, {seconds} s per case)",
        ["storage", "package", "downloads", "per second", "HTTP requests/s", "MiB/s",
         "p50", "p99", "Wharf answer p50 / p99", "bytes through Wharf per download",
         "through Wharf in all", "other answers"],
        [[c["label"], c["case"], f"{c['answers']:,}", f"{c['per_second']:,.1f}",
          f"{c['requests_per_second']:,.1f}", f"{c['mib_per_second']:,.1f}",
          common.ms(c["p50"]), common.ms(c["p99"]),
          f"{common.ms(c['wharf_p50'])} / {common.ms(c['wharf_p99'])}",
          _bytes(c["through_per_answer"]), _mib(c["through_wharf"]), _other(c["other"])]
         for c in downloads],
        note=(
            f"{clients} clients, coroutines on one asyncio loop in the benchmark process "
            "(HTTP/1.1 of their own, bench/load.py), each with one keep-alive connection to "
            "Wharf, download the same package back to back for the whole case with the "
            f"owner's token: the small package ({sizes['small package'][2]:,} bytes) or the "
            f"16 MiB one ({sizes['16 MiB package'][2]:,} bytes). Local: gunicorn sends the "
            "file (sendfile). S3 redirect: Wharf answers 302 to a presigned URL and the "
            "client follows it on a second keep-alive connection, to SeaweedFS, without the "
            "token; both legs are one download (HTTP requests/s counts them both). S3 "
            "stream: Wharf reads the object from the bucket and sends it. Latency: from the "
            "first request to the last byte of the package; the Wharf answer is the first "
            "leg alone (the whole download unless redirected). Every download is read "
            "whole; before each case one is checked against the package's SHA-256, and "
            f"{WARM_UP_SECONDS} s of the same load, not counted, warm the server up (with "
            "S3, a process's first requests set up its boto3 client and connections). Bytes "
            "through Wharf: the bodies of Wharf's answers (a 302 has none)."
        ),
    )  # fmt: skip
    report.table(
        f"S3: repodata.json.zst ({clients} clients, {seconds // 2} s per case)",
        ["storage", "case", "answers", "per second", "MiB/s", "p50", "p99", "other answers"],
        [[c["label"].removesuffix(" redirect"), c["case"], f"{c['answers']:,}",
          f"{c['per_second']:,.0f}", f"{c['mib_per_second']:,.1f}", common.ms(c["p50"]),
          common.ms(c["p99"]), _other(c["other"])] for c in index],
        note=(
            f"The channel's repodata.json.zst ({local['index_size']:,} bytes) with the "
            "token, by the same clients after the same warm-up; 304: with the current ETag "
            "in If-None-Match. Index files are always streamed by Wharf (from the bucket "
            "with S3, whatever the download mode), so their ETag and Cache-Control stay "
            "Wharf's; a 304 is answered from the database alone."
        ),
    )  # fmt: skip
    rows = []
    for result in (local, s3):
        up = result["uploads"]
        small, large, fresh = up["small"][0], up["large"][0], up["freshness"]
        rows.append([
            up["label"].removesuffix(" redirect"), len(small), common.ms(common.median(small)),
            common.ms(common.percentile(small, 0.95)), len(large),
            common.ms(common.median(large)), common.ms(max(large)), len(fresh),
            common.ms(common.median(fresh)), common.ms(common.percentile(fresh, 0.95)),
        ])  # fmt: skip
    report.table(
        "S3: uploads and freshness",
        ["storage", "small uploads", "p50", "p95", "16 MiB uploads", "p50", "max",
         "freshness uploads", "freshness p50", "freshness p95"],
        rows,
        note=(
            f"One client uploads into an empty private channel one package after another "
            f"(multipart, as rattler-build sends them, a new connection each): "
            f"{SMALL_UPLOADS} small packages (a few kB), then {LARGE_UPLOADS} of 16 MiB; "
            "latency until the 201. Freshness: "
            f"{FRESHNESS_UPLOADS} more small packages, each timed from the start of its "
            "upload until a GET of repodata.json (polled every 20 ms) lists it; the Celery "
            "worker rebuilds the index and, with S3, writes the index files to the bucket."
        ),
    )  # fmt: skip
    cpu_rows = [[c["label"], c["case"], *_cpu_cells(c["cpu"])] for c in cases]
    for result in (local, s3):
        up = result["uploads"]
        label = up["label"].removesuffix(" redirect")
        cpu_rows.append([label, f"{SMALL_UPLOADS} small uploads", *_cpu_cells(up["small"][1])])
        cpu_rows.append([label, f"{LARGE_UPLOADS} 16 MiB uploads", *_cpu_cells(up["large"][1])])
    report.table(
        "S3: where the CPU went, per case",
        ["storage", "case", *(f"{label}, CPU s" for label in PARTS.values()), "machine, CPU s"],
        cpu_rows,
        note=(
            "CPU seconds (user + system, from /proc) during each case above, of all 2 "
            f"cores: a download case lasts {seconds} s, an index case {seconds // 2} s, so "
            f"at most {2 * seconds} and {seconds} CPU seconds. gunicorn counts its master "
            "and workers, SeaweedFS its one process; the rest of the machine is what all "
            "other processes (Redis, PostgreSQL's background writers, other people's tests, "
            "the kernel) used meanwhile. Reading 16 MiB answers costs the clients "
            "themselves much CPU: where their share is large, they limit the rate too."
        ),
    )  # fmt: skip


def run(report, clients=None, seconds=None):
    clients = clients or int(os.environ.get("BENCH_S3_CLIENTS", CLIENTS))
    seconds = seconds or int(os.environ.get("BENCH_S3_SECONDS", SECONDS))
    before = os.getloadavg()
    results = {storage: _in_process(storage, clients, seconds) for storage in RUNS}
    after = os.getloadavg()
    load = [", ".join(f"{x:.2f}" for x in values) for values in (before, after)]
    write_report(report, results, clients, seconds, load)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--seconds", type=int, default=SECONDS, help="per download case")
    parser.add_argument("--no-write", action="store_true", help=f"do not append to {common.REPORT}")
    parser.add_argument("--measure", choices=list(RUNS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.clients, args.seconds), default=str))
        return
    report = common.Report("S3 storage")
    run(report, args.clients, args.seconds)
    if not args.no_write:
        report.write()


if __name__ == "__main__":
    main()
