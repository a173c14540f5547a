"""Freshness: from the start of an upload to a client GET that shows the package.

    python -m bench.freshness [SIZE ...]       (default 1000 10000 100000)

For each size a channel is loaded with that many records, then packages are uploaded
one at a time over HTTP to gunicorn while a real Celery worker indexes them. For each
upload the clock runs from the start of the request until GETs of the shard index,
repodata.json.zst and repodata.json all show the new package. The embedded mode (SQLite,
rebuild inside the upload request) is measured the same way.

The same server then answers a py-rattler solve of one package with an empty cache; the
bytes it sends are compared with the size of repodata.json.zst (sharded repodata, CEP-16).
"""

import asyncio
import io
import json
import os
import re
import sys
import tempfile
import time

import msgpack
import zstandard

from . import common, servers
from .indexing import SUBDIR, wharf_load

UPLOADS = 20
DATABASE = os.environ.get(
    "WHARF_BENCH_FRESHNESS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/wharf_bench_freshness"
)


def _unzstd(data):
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()


def _shows(base_url, channel, token, name, filename):
    """Poll until each index file shows the package; return the time each GET finished."""
    seen = {}
    deadline = time.perf_counter() + 120
    while len(seen) < 3:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{filename} did not appear within 120 s")
        if "shards" not in seen:
            index = msgpack.unpackb(
                _unzstd(
                    servers.get(base_url, f"{channel}/{SUBDIR}/repodata_shards.msgpack.zst", token)
                )
            )
            if name in index["shards"]:
                seen["shards"] = time.perf_counter()
            else:
                time.sleep(0.02)
                continue
        if "zst" not in seen:
            data = _unzstd(servers.get(base_url, f"{channel}/{SUBDIR}/repodata.json.zst", token))
            if filename.encode() in data:
                seen["zst"] = time.perf_counter()
            continue
        data = servers.get(base_url, f"{channel}/{SUBDIR}/repodata.json", token)
        if filename.encode() in data:
            seen["json"] = time.perf_counter()
    return seen


def measure(base_url, channel, token, prefix, count=UPLOADS):
    folder = tempfile.mkdtemp(prefix="wharf-fresh-")
    times = []
    for number in range(count):
        name = f"{prefix}{number:03d}"
        path = common.extra_package(folder, name)
        started = time.perf_counter()
        status = servers.upload(base_url, channel, token, path)
        assert status == 201, status
        seen = _shows(base_url, channel, token, name, path.name)
        times.append(max(seen.values()) - started)
    return times


def gateway_transfer(base_url, server_log, channel, token, spec):
    """Bytes py-rattler's Gateway fetches to solve ``spec`` with an empty cache."""
    import rattler

    folder = tempfile.mkdtemp(prefix="wharf-gateway-")
    auth = f"{folder}/auth.json"
    with open(auth, "w") as out:
        json.dump({"127.0.0.1": {"BearerToken": token}}, out)
    os.environ["RATTLER_AUTH_FILE"] = auth
    client = rattler.Client.authenticated_client()
    before = server_log.stat().st_size

    async def solve():
        gateway = rattler.Gateway(client=client, cache_dir=f"{folder}/cache")
        return await rattler.solve(
            [f"{base_url}/{channel}"], [spec], gateway=gateway, platforms=[SUBDIR, "noarch"]
        )

    records = asyncio.run(solve())
    time.sleep(0.5)  # let gunicorn write its access log
    with server_log.open() as log:
        log.seek(before)
        lines = log.read().splitlines()
    pattern = re.compile(r"^(GET|HEAD) (\S+) (\d+) (\d+|-)$")
    sent = 0
    requests = 0
    for line in lines:
        match = pattern.match(line)
        if match and match.group(2).startswith(f"/{channel}/"):
            requests += 1
            sent += int(match.group(4)) if match.group(4) != "-" else 0
    return sent, requests, len(records)


def _token(channel):
    from accounts.models import ApiToken, User

    return ApiToken.create_for(User.objects.get(username="bench"), "bench")[1]


def measure_size(size, embedded):
    """Runs in its own process: load a channel, serve it, measure; print JSON."""
    extra = {"REDIS_URL": ""}  # this process imports and indexes by itself
    if embedded:
        extra.update(DATABASE_URL="", WHARF_DATA_DIR=str(common.BENCH_DIR / "data" / "sqlite"))
    common.setup_django(**extra)
    from packages_app.models import SubdirIndex

    files = common.packages(size)
    channel, _ = wharf_load(files)
    token = _token(channel)
    result = {}
    with servers.wharf(workers=2, threads=8, embedded=embedded, REDIS_URL=common.REDIS_URL) as (
        base_url,
        _server,
    ):
        # The first change after a worker starts loads the records into memory.
        measure(base_url, channel.name, token, "warm", count=3)
        result["times"] = measure(base_url, channel.name, token, "fresh")
        if not embedded:
            log = common.BENCH_DIR / "logs" / "access.log"
            spec = f"pkg{size // common.BUILDS_PER_NAME - 1:06d}"
            result["gateway"] = gateway_transfer(base_url, log, channel.name, token, spec)
    index = SubdirIndex.objects.get(channel=channel, subdir=SUBDIR)
    result["zst"] = index.published_files["repodata.json.zst"]["size"]
    print(json.dumps(result))


def _in_process(size, embedded):
    import subprocess

    argv = [sys.executable, "-m", "bench.freshness", "--one", str(size)]
    if embedded:
        argv.append("--embedded")
    env = common.bench_env(WHARF_BENCH_DATABASE_URL=DATABASE)
    output = subprocess.run(argv, cwd=common.ROOT, env=env, check=True, capture_output=True,
                            text=True)  # fmt: skip
    return json.loads(output.stdout.strip().splitlines()[-1])


def run(report, sizes=(1000, 10000, 100000)):
    rows, gateway_rows = [], []
    for size in sizes:
        for embedded in (False, True):
            result = _in_process(size, embedded)
            times = result["times"]
            mode = (
                "embedded (SQLite, in-process)"
                if embedded
                else ("services (PostgreSQL, Redis, 1 Celery worker)")
            )
            rows.append([
                f"{size:,}", mode, common.ms(common.median(times)),
                common.ms(common.percentile(times, 0.95)), common.ms(max(times)),
            ])  # fmt: skip
            if not embedded:
                sent, requests, solved = result["gateway"]
                gateway_rows.append([
                    f"{size:,}", solved, requests, f"{sent / 1e3:.0f} kB",
                    f"{result['zst'] / 1e3:.0f} kB", f"{100 * sent / result['zst']:.1f} %",
                ])  # fmt: skip
    report.table(
        "Freshness: upload start to a GET that shows the package",
        ["records", "mode", "p50", "p95", "max"],
        rows,
        note=(
            f"{UPLOADS} uploads one after another, each a new package name, after 3 warm-up "
            "uploads; the time is until the shard index, repodata.json.zst and "
            "repodata.json all show it. Targets: p50 <= 1 s, p95 <= 2 s at 100,000."
        ),
    )
    report.table(
        "Sharded repodata: py-rattler solving one package with an empty cache",
        ["records", "packages solved", "requests", "bytes sent", "repodata.json.zst",
         "share"],
        gateway_rows,
        note="Target: <= 5 % of repodata.json.zst.",
    )  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        measure_size(int(sys.argv[2]), "--embedded" in sys.argv)
        sys.exit()
    chosen = tuple(int(arg) for arg in sys.argv[1:]) or (1000, 10000, 100000)
    report = common.Report("Freshness and sharded repodata")
    run(report, chosen)
    report.write()
