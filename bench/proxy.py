"""A proxy channel of a conda-forge-sized upstream: the first copy of a subdir, a refresh
after the upstream changed 100 records, and the 304 of an unchanged subdir.

    python -m bench.proxy [RECORDS]        (default 470000; BENCH_PROXY_RECORDS)

The upstream is a generated linux-64 ``repodata.json`` of RECORDS records shaped like
conda-forge's (about 19 builds per name, 5 dependencies, conda-forge's fields; 470,000
records is about the size of conda-forge's linux-64), served by a plain HTTP server on
loopback. Each step runs in a fresh process, as a Celery worker would run it, and reports
its time and peak RSS; the warm refresh runs in the process that made the first copy (a
long-lived worker keeps its records). rattler-index cannot take part: it indexes package
files, and these records have none.
"""

import functools
import json
import os
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

from . import common

BUILDS = 19
FOLDER = common.BENCH_DIR / "upstream"

_STEP = """
import json, sys, time
from bench import common
# Services mode, as a Celery worker: the .bz2 that follows is a task of its own (sent to
# the benchmark's Redis, where no worker takes it; timed apart below).
common.setup_django(WHARF_UPSTREAM_PRIVATE_NETWORKS="1")
from channels_app.lifecycle import create_channel
from channels_app.models import Channel
from channels_app.sources import attach
from django.contrib.auth import get_user_model
from packages_app.models import SubdirIndex
from packages_app.upstream import refresh
step, url = sys.argv[1], sys.argv[2]
out = {}
if step == "first":
    common.reset_database()
    owner = get_user_model().objects.create_user("bench", "bench@example.org", "pw")
    channel = create_channel(owner, "forge", kind="proxy")
    attach(channel, upstream={"url": url})
else:
    channel = Channel.objects.get(name="forge")
def one(label):
    started = time.perf_counter()
    outcome = refresh.refresh_subdir(channel.pk, "linux-64")
    out[label] = {"seconds": time.perf_counter() - started, "outcome": outcome,
                  "peak_mb": common.peak_rss_mb()}
one("run")
if step == "first":
    # The upstream changes 100 records; this process (a worker keeping its records) refreshes.
    print("CHANGE", flush=True)
    sys.stdin.readline()
    one("warm")
index = SubdirIndex.objects.get(channel=channel, subdir="linux-64")
if step == "again":
    from packages_app.index import bz2_refresh
    started = time.perf_counter()
    bz2_refresh.refresh_bz2(channel.pk, "linux-64")
    out["bz2"] = {"seconds": time.perf_counter() - started, "peak_mb": common.peak_rss_mb()}
    index.refresh_from_db()
out["files"] = {name: entry["size"] for name, entry in index.published_files.items()}
print("RESULT " + json.dumps(out), flush=True)
"""


def _record(i, names):
    name_index = i // BUILDS
    name = f"pkg{name_index:06d}"
    depends = [f"pkg{(name_index * 7 + k) % names:06d} >={k}.0" for k in range(1, 5)]
    return name, {
        "build": f"py311h{i:08x}_{i % 3}",
        "build_number": i % 3,
        "depends": ["python >=3.11,<3.12.0a0", *depends],
        "license": "BSD-3-Clause",
        "license_family": "BSD",
        "md5": f"{i:032x}",
        "name": name,
        "sha256": f"{i:064x}",
        "size": 100_000 + i % 50_000,
        "subdir": "linux-64",
        "timestamp": 1_700_000_000_000 + i,
        "version": f"{1 + i % BUILDS}.{i % 7}.0",
    }


def write_upstream(records, changed=0):
    """The upstream's linux-64/repodata.json; ``changed`` records get a new build."""
    names = records // BUILDS + 1
    packages = {}
    for i in range(records):
        name, record = _record(i, names)
        if i < changed:
            record["build_number"] += 10
            record["build"] = record["build"] + "_r"
        packages[f"{name}-{record['version']}-{record['build']}.conda"] = record
    document = {"info": {"subdir": "linux-64"}, "packages": {}, "packages.conda": packages,
                "removed": [], "repodata_version": 1}  # fmt: skip
    for subdir in ("linux-64", "noarch"):
        (FOLDER / subdir).mkdir(parents=True, exist_ok=True)
    empty = {"info": {"subdir": "noarch"}, "packages": {}, "packages.conda": {}}
    (FOLDER / "noarch" / "repodata.json").write_text(json.dumps(empty))
    path = FOLDER / "linux-64" / "repodata.json"
    path.write_bytes(json.dumps(document, separators=(",", ":")).encode())
    moment = time.time() + (2 if changed else 0)  # a later Last-Modified
    os.utime(path, (moment, moment))
    return path.stat().st_size


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve():
    handler = functools.partial(_Quiet, directory=str(FOLDER))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _step(step, url, records, on_change=None):
    process = subprocess.Popen(
        [sys.executable, "-c", _STEP, step, url], cwd=common.ROOT, env=common.bench_env(),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    result = None
    for line in process.stdout:
        if line.startswith("CHANGE"):
            on_change()
            process.stdin.write("\n")
            process.stdin.flush()
        elif line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
    if process.wait() != 0 or result is None:
        raise RuntimeError(f"the {step} step failed")
    return result


def run(report, records=470_000):
    size = write_upstream(records)
    server, url = serve()
    try:
        first = _step("first", url, records, on_change=lambda: write_upstream(records, 100))
        write_upstream(records, 200)  # another 100 changed, for a process without records
        cold = _step("again", url, records)
    finally:
        server.shutdown()
        import redis

        redis.Redis.from_url(common.REDIS_URL).flushdb()  # the .bz2 tasks no worker took
    rows = [
        ("first copy (fetch, parse, shards, repodata, zst, current_repodata)",
         first["run"]["outcome"], common.seconds(first["run"]["seconds"]),
         f"{first['run']['peak_mb']:.0f} MB"),
        ("refresh, 100 records changed, worker kept its records", first["warm"]["outcome"],
         common.seconds(first["warm"]["seconds"]), f"{first['warm']['peak_mb']:.0f} MB"),
        ("refresh, 100 more changed, fresh process", cold["run"]["outcome"],
         common.seconds(cold["run"]["seconds"]), f"{cold['run']['peak_mb']:.0f} MB"),
        ("repodata.json.bz2, its own task after a refresh", "new",
         common.seconds(cold["bz2"]["seconds"]), f"{cold['bz2']['peak_mb']:.0f} MB"),
    ]  # fmt: skip
    files = ", ".join(
        f"{name} {bytes_ / 1e6:.1f} MB" for name, bytes_ in sorted(cold["files"].items())
    )
    report.table(
        f"Proxy channel: a {records:,}-record linux-64 subdir from an upstream on loopback",
        ["step", "outcome", "time", "peak RSS of the process"],
        rows,
        note=f"Code: {common.commit()}. Services mode (a worker's process, PostgreSQL). "
        f"Upstream repodata.json {size / 1e6:.0f} MB, served by http.server (no gzip). "
        f"Published: {files}. Targets: first copy ≤ 60 s and ≤ 1.5 GB; a refresh of 100 "
        "changed records ≤ 10 s.",
    )


def main(argv):
    records = int(argv[0]) if argv else int(os.environ.get("BENCH_PROXY_RECORDS", 470_000))
    report = common.Report("Proxy")
    run(report, records)
    report.write()


if __name__ == "__main__":
    main(sys.argv[1:])
