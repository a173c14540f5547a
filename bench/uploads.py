"""Upload throughput and memory.

    python -m bench.uploads

- Throughput: small packages uploaded by 16 concurrent clients into one channel for
  60 s, 2 Celery workers indexing; every accepted package must end up in repodata.json.
- Memory: the web process's resident memory before and after receiving a 1 GB package.
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import orjson

from . import common, servers
from .indexing import SUBDIR, wharf_load

DATABASE = "postgres://postgres@127.0.0.1:5432/wharf_bench_uploads"
CLIENTS = 16
DURATION = 60


def _packages(count):
    import rattler_build

    folder = common.PACKAGE_CACHE / f"throughput-{count}"
    done = folder / ".complete"
    if not done.exists():
        files = folder / "_files"
        files.mkdir(parents=True, exist_ok=True)
        (files / "README").write_text("throughput\n")
        for number in range(count):
            rattler_build.assemble_package(
                f"tp{number:05d}", "1.0", SUBDIR, "h0_0", folder, files_dir=files,
                depends=["pkg000001 >=1.0"], compression_level=1,
            )  # fmt: skip
        done.write_text("")
    return sorted(p for p in folder.iterdir() if p.suffix == ".conda")


def throughput():
    common.setup_django(REDIS_URL="")
    from accounts.models import ApiToken, User

    channel, _ = wharf_load(common.packages(1000))
    token = ApiToken.create_for(User.objects.get(username="bench"), "bench")[1]
    candidates = _packages(4000)
    latencies, statuses = [], []
    lock = threading.Lock()
    stop_at = [0.0]
    queue = iter(candidates)

    def client():
        while time.perf_counter() < stop_at[0]:
            with lock:
                path = next(queue, None)
            if path is None:
                return
            started = time.perf_counter()
            status = servers.upload(base_url, channel.name, token, path)
            with lock:
                latencies.append(time.perf_counter() - started)
                statuses.append((status, path.name))

    with servers.wharf(
        workers=2, threads=8, celery_workers=2, celery_concurrency=1, REDIS_URL=common.REDIS_URL
    ) as (base_url, _server):
        started = time.perf_counter()
        stop_at[0] = started + DURATION
        with ThreadPoolExecutor(CLIENTS) as pool:
            for _ in range(CLIENTS):
                pool.submit(client)
        elapsed = time.perf_counter() - started
        accepted = {name for status, name in statuses if status == 201}
        deadline = time.perf_counter() + 300
        while True:
            document = orjson.loads(
                servers.get(base_url, f"{channel.name}/{SUBDIR}/repodata.json", token)
            )
            missing = accepted - set(document["packages.conda"])
            if not missing or time.perf_counter() > deadline:
                break
            time.sleep(0.2)
        settle = time.perf_counter() - started - elapsed
    return {
        "uploads": len(statuses),
        "accepted": len(accepted),
        "failed": len(statuses) - len(accepted),
        "seconds": elapsed,
        "p50": common.median(latencies),
        "p95": common.percentile(latencies, 0.95),
        "missing": len(missing),
        "settle": settle,
    }


def _rss_mb(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return float("nan")


def big_upload_memory(size_mb=1024):
    common.setup_django(REDIS_URL="")
    import rattler_build

    from accounts.models import ApiToken, User

    channel, _ = wharf_load(common.packages(1000))
    token = ApiToken.create_for(User.objects.get(username="bench"), "bench")[1]
    folder = tempfile.mkdtemp(prefix="wharf-big-", dir=common.BENCH_DIR)
    content = os.path.join(folder, "files")
    os.makedirs(content)
    with open(os.path.join(content, "blob.bin"), "wb") as blob:
        for _ in range(size_mb):
            blob.write(os.urandom(1024 * 1024))
    package = rattler_build.assemble_package(
        "big", "1.0", SUBDIR, "h0_0", folder, files_dir=content, compression_level=1
    )
    path = package.path
    os.unlink(os.path.join(content, "blob.bin"))
    with servers.wharf(workers=1, threads=1, REDIS_URL=common.REDIS_URL) as (base_url, server):
        time.sleep(1)
        child = int(subprocess.check_output(["pgrep", "-P", str(server.pid)]).split()[0])
        servers.get(base_url, f"{channel.name}/{SUBDIR}/repodata.json", token)  # warm up
        before = _rss_mb(child)
        started = time.perf_counter()
        status = _streamed_upload(base_url, channel.name, token, path)
        seconds = time.perf_counter() - started
        peak = _rss_mb(child, "VmHWM")
    size = os.path.getsize(path)
    os.unlink(path)
    return {"status": status, "size_mb": size / 1e6, "before": before, "peak": peak,
            "seconds": seconds}  # fmt: skip


def _streamed_upload(base_url, channel, token, path):
    """Raw-body upload streamed from the file, so the client never holds it in memory."""
    import hashlib
    import http.client
    from urllib.parse import urlsplit

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    url = urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
    with open(path, "rb") as body:
        connection.request(
            "POST", f"/api/v1/upload/{channel}", body=body,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/octet-stream",
                "Content-Length": str(os.path.getsize(path)),
                "X-File-Name": os.path.basename(path),
                "X-File-SHA256": digest.hexdigest(),
            },
        )  # fmt: skip
        return connection.getresponse().status


def _in_process(which):
    env = common.bench_env(WHARF_BENCH_DATABASE_URL=DATABASE)
    output = subprocess.run([sys.executable, "-m", "bench.uploads", which], cwd=common.ROOT,
                            env=env, check=True, capture_output=True, text=True)  # fmt: skip
    return json.loads(output.stdout.strip().splitlines()[-1])


def run(report):
    result = _in_process("--throughput")
    report.table(
        "Upload throughput into one channel",
        ["clients", "uploads", "per second", "refused or failed", "p50", "p95",
         "indexed after the last upload", "missing from repodata.json"],
        [[CLIENTS, result["uploads"], f"{result['accepted'] / result['seconds']:.1f}",
          result["failed"], common.ms(result["p50"]), common.ms(result["p95"]),
          common.seconds(result["settle"]), result["missing"]]],
        note=(
            f"Small .conda packages, {CLIENTS} concurrent clients for {DURATION} s, gunicorn "
            "2 workers x 8 threads, 2 Celery worker processes, PostgreSQL, Redis; the channel "
            "starts with 1,000 records. Target: >= 30 uploads per second, none lost."
        ),
    )  # fmt: skip
    memory = _in_process("--memory")
    report.table(
        "Memory of the web process receiving a 1 GB package",
        ["package", "status", "RSS before", "peak RSS", "increase", "upload time"],
        [[f"{memory['size_mb']:.0f} MB", memory["status"], f"{memory['before']:.0f} MB",
          f"{memory['peak']:.0f} MB", f"{memory['peak'] - memory['before']:.0f} MB",
          common.seconds(memory["seconds"])]],
        note="Raw-body upload to one gunicorn worker. Target: increase <= 50 MB.",
    )  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:2] == ["--throughput"]:
        print(json.dumps(throughput()))
    elif sys.argv[1:2] == ["--memory"]:
        print(json.dumps(big_upload_memory()))
    else:
        report = common.Report("Uploads")
        run(report)
        report.write()
