"""A mirror channel of a conda-forge-sized upstream, keeping a tenth of its names.

    python -m bench.mirror [RECORDS]       (default 470000; BENCH_MIRROR_RECORDS)

The upstream's linux-64 ``repodata.json`` has RECORDS records, 20 builds per name. The
mirror's filter (``include: ["pkg*0"]``) selects every tenth name; those records are real
package files (made once with rattler-build and kept under var/bench), the others are
records only. A plain HTTP server serves it all on loopback. Each run is timed in a fresh
process, as a Celery worker runs it: the first (reading the index, selecting, downloading,
checking and storing every selected file), then, after the upstream gained 100 records of
selected names, the second. The first index build of the mirrored subdir is timed apart
(a worker's task of its own after a run).
"""

import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from . import common

FOLDER = common.BENCH_DIR / "mirror-upstream"
SELECTED = 10  # every tenth name is selected (include: pkg*0)
NEW = 100

_STEP = """
import json, sys, time
from bench import common
common.setup_django(WHARF_UPSTREAM_PRIVATE_NETWORKS="1")
from channels_app.lifecycle import create_channel
from channels_app.models import Channel
from channels_app.sources import attach
from django.contrib.auth import get_user_model
from packages_app.index import rebuilds
from packages_app.models import PackageFile
from packages_app.upstream import mirror
step, url = sys.argv[1], sys.argv[2]
if step == "first":
    common.reset_database()
    owner = get_user_model().objects.create_user("bench", "bench@example.org", "pw")
    channel = create_channel(owner, "forge-subset", kind="mirror")
    attach(channel, upstream={"url": url, "platforms": ["linux-64"], "include": ["pkg*0"]})
channel = Channel.objects.select_related("upstream").get(name="forge-subset")
marks = {}
def progress(run):
    marks.setdefault("metadata", time.perf_counter() - started)
started = time.perf_counter()
run = mirror.sync(channel, progress=progress)
seconds = time.perf_counter() - started
peak = common.peak_rss_mb()
started = time.perf_counter()
rebuilds.rebuild_now(channel.pk, "linux-64", "main")
index = time.perf_counter() - started
out = {"seconds": seconds, "metadata": marks.get("metadata", seconds), "peak_mb": peak,
       "state": run.state, "selected": run.selected, "added": run.added, "failed": run.failed,
       "bytes": run.added_bytes, "index_seconds": index, "index_peak_mb": common.peak_rss_mb(),
       "held": PackageFile.objects.filter(channel=channel).count()}
print("RESULT " + json.dumps(out), flush=True)
"""


def _selected(i):
    return (i // common.BUILDS_PER_NAME) % SELECTED == 0


def _make(args):
    """Runs in a worker process: the real packages of ``names`` (20 builds each), made in
    a folder of the job's own (two writers of one files folder break each other's
    archives), then moved beside the index."""
    folder, names = args
    own = Path(folder) / f"_job{names[0]}"
    made = []
    for name_index in names:
        first = name_index * common.BUILDS_PER_NAME
        made += common._make((str(own), first, common.BUILDS_PER_NAME, "linux-64"))
    for path in made:
        os.replace(path, Path(folder) / Path(path).name)
    return len(made)


def _new(folder, count):
    """``count`` newer builds of selected names (version 2.x), as an upstream adds them."""
    import rattler_build

    files = folder / "_files"
    files.mkdir(exist_ok=True)
    (files / "README").write_text("new\n")
    made = []
    for k in range(count):
        name_index = (k % 50) * SELECTED
        output = rattler_build.assemble_package(
            f"pkg{name_index:06d}", f"2.{k}.0", "linux-64", f"h{k:08x}_1", folder,
            files_dir=files, license="MIT", compression_level=1,
        )  # fmt: skip
        made.append(output.path)
    return made


def _describe(path):
    data = open(path, "rb").read()  # noqa: SIM115 - small files
    name, version, build = os.path.basename(path)[: -len(".conda")].rsplit("-", 2)
    return os.path.basename(path), {
        "build": build, "build_number": 0, "depends": [], "license": "MIT",
        "md5": hashlib.md5(data).hexdigest(),  # noqa: S324 - repodata's md5
        "name": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
        "subdir": "linux-64", "timestamp": 1_700_000_000_000, "version": version,
    }  # fmt: skip


def write_upstream(records, extra=()):
    """The upstream folder: real files of the selected names, records for all."""
    subdir = FOLDER / "linux-64"
    done = FOLDER / f".complete-{records}"
    if not done.exists():
        import shutil

        shutil.rmtree(FOLDER, ignore_errors=True)
        subdir.mkdir(parents=True)
        names = [n for n in range(records // common.BUILDS_PER_NAME) if n % SELECTED == 0]
        jobs = [(str(subdir), names[k : k + 50]) for k in range(0, len(names), 50)]
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(os.cpu_count() or 1, mp_context=context) as pool:
            list(pool.map(_make, jobs))
        done.write_text("")
    packages = {}
    for i in range(records):
        if not _selected(i):
            name = f"pkg{i // common.BUILDS_PER_NAME:06d}"
            version, build = f"1.{i % common.BUILDS_PER_NAME}.0", f"h{i:08x}_0"
            packages[f"{name}-{version}-{build}.conda"] = {
                "build": build, "build_number": 0, "depends": [], "license": "MIT",
                "md5": f"{i:032x}", "name": name, "sha256": f"{i:064x}", "size": 4000,
                "subdir": "linux-64", "timestamp": 1_700_000_000_000, "version": version,
            }  # fmt: skip
    real = sorted(p for p in subdir.iterdir() if p.suffix == ".conda")
    for path in real:
        filename, record = _describe(path)
        packages[filename] = record
    document = {"info": {"subdir": "linux-64"}, "packages": {}, "packages.conda": packages,
                "removed": [], "repodata_version": 1}  # fmt: skip
    (subdir / "repodata.json").write_bytes(json.dumps(document, separators=(",", ":")).encode())
    return len(real), (subdir / "repodata.json").stat().st_size


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve_folder(folder):
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _step(step, url):
    process = subprocess.run(
        [sys.executable, "-c", _STEP, step, url], cwd=common.ROOT, env=common.bench_env(),
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    for line in process.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"the {step} step failed:\n{process.stderr[-4000:]}")


def run(report, records=470_000):
    real, size = write_upstream(records)
    server, url = serve_folder(FOLDER)
    try:
        first = _step("first", url)
        _new(FOLDER / "linux-64", NEW)
        write_upstream(records)
        again = _step("again", url)
    finally:
        server.shutdown()
        for path in (FOLDER / "linux-64").glob("pkg*-2.*_1.conda"):
            path.unlink()  # the next benchmark starts from the same upstream
        import redis

        redis.Redis.from_url(common.REDIS_URL).flushdb()  # tasks no worker took
    rows = []
    for label, result in (("first run", first), (f"next run, {NEW} new upstream", again)):
        rows.append((
            label, f"{result['selected']:,} selected, {result['added']:,} copied "
            f"({result['bytes'] / 1e6:.0f} MB), {result['failed']} failed",
            common.seconds(result["metadata"]), common.seconds(result["seconds"]),
            f"{result['peak_mb']:.0f} MB", common.seconds(result["index_seconds"]),
        ))  # fmt: skip
    report.table(
        f"Mirror channel: a tenth of the names of a {records:,}-record linux-64 subdir",
        ["run", "files", "index read and compared", "whole run", "peak RSS",
         "index build after it"],
        rows,
        note=f"Code: {common.commit()}. Services mode (a worker's process, PostgreSQL), "
        f"WHARF_MIRROR_DOWNLOADS 4, WHARF_MIRROR_BATCH 50. Upstream repodata.json "
        f"{size / 1e6:.0f} MB ({real:,} real package files, the rest records only), "
        "served by http.server on loopback. Targets: ≤ 10 min for the metadata of the "
        f"first run; the next run ≤ 5 s plus its bytes. Mirror held {again['held']:,} files.",
    )  # fmt: skip


def main(argv):
    records = int(argv[0]) if argv else int(os.environ.get("BENCH_MIRROR_RECORDS", 470_000))
    report = common.Report("Mirror")
    run(report, records)
    report.write()


if __name__ == "__main__":
    main(sys.argv[1:])
