"""Revalidation of a proxy channel's index against a hosted channel's, one server.

    python -m bench.revalidate [ROUNDS]     (default 3)

A private hosted channel and a private proxy channel (of a static upstream on loopback
holding the same packages, its copy made before) are served by the same gunicorn (2
workers x 4 threads, gthread). wrk (64 connections, 10 s) sends conditional requests for
``linux-64/repodata.json`` with the current ETag (answered 304), then plain requests for
``repodata.json.zst`` (200), to each channel in turn, alternating, ROUNDS times. Target:
a proxy channel's 304 as fast as a hosted channel's.
"""

import asyncio
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from . import common, serving
from .mirror import serve_folder

PACKAGES = 200
DURATION = 10

_SETUP = """
import sys
from bench import common
common.setup_django(WHARF_UPSTREAM_PRIVATE_NETWORKS="1", REDIS_URL="")
common.reset_database()
from accounts.models import ApiToken
from channels_app.lifecycle import create_channel
from channels_app.sources import attach
from django.contrib.auth import get_user_model
from packages_app.index import rebuilds
from packages_app.intake import importing
from packages_app.upstream import refresh
folder, url = sys.argv[1], sys.argv[2]
owner = get_user_model().objects.create_user("bench", "bench@example.org", "pw")
hosted = create_channel(owner, "hosted", private=True)
importing.import_files(hosted, sorted(__import__("pathlib").Path(folder).glob("*.conda")), owner)
rebuilds.rebuild_now(hosted.pk, "linux-64")
proxy = create_channel(owner, "proxied", private=True, kind="proxy")
attach(proxy, upstream={"url": url, "refresh_seconds": 86400})
assert refresh.refresh_subdir(proxy.pk, "linux-64") == "new"
print("TOKEN " + ApiToken.create_for(owner, "bench")[1], flush=True)
"""


def _upstream(tmp):
    """A static channel directory of PACKAGES packages, indexed by rattler-index."""
    import rattler

    root = tmp / "upstream"
    (root / "linux-64").mkdir(parents=True)
    (root / "noarch").mkdir()
    for path in common.packages(PACKAGES):
        shutil.copy(path, root / "linux-64" / path.name)
    asyncio.run(rattler.index.index_fs(root, write_zst=False, write_shards=False, force=True))
    return root


def _setup(folder, url):
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", _SETUP, str(folder), url], cwd=common.ROOT,
        env=common.bench_env(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    for line in done.stdout.splitlines():
        if line.startswith("TOKEN "):
            return line.removeprefix("TOKEN ")
    raise RuntimeError(f"setup failed:\n{done.stderr[-4000:]}")


def run(report, rounds=3):
    serving._install_tools()
    tmp = Path(tempfile.mkdtemp(prefix="wharf-revalidate-"))
    upstream = _upstream(tmp)
    server, url = serve_folder(upstream)
    wharf = None
    try:
        secret = _setup(upstream / "linux-64", url)
        port = serving._free_port()
        wharf = serving.start_wharf(tmp, port, "gunicorn:2x4")
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {secret}"}
        results = {}
        for _ in range(rounds):
            for channel in ("hosted", "proxied"):
                index = f"{base}/{channel}/linux-64/repodata.json"
                etag = serving._etag(index, auth)
                cases = (("304", index, {**auth, "If-None-Match": etag}),
                         ("zst 200", index + ".zst", auth))  # fmt: skip
                for case, target, headers in cases:
                    result = serving.wrk(target, headers, DURATION, tmp)
                    if result["errors"] or result["status"]:
                        raise RuntimeError(f"{channel} {case}: {result}")
                    results.setdefault((case, channel), []).append(result)
    finally:
        serving._stop(wharf)
        server.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    for (case, channel), found in sorted(results.items()):
        rows.append((
            f"repodata.json {case}" if case == "304" else f"repodata.json.{case}", channel,
            " / ".join(f"{r['rps']:,.0f}" for r in found),
            f"{statistics.median(r['rps'] for r in found):,.0f}",
            f"{statistics.median(r['p50_us'] for r in found) / 1000:.2f} ms",
            f"{statistics.median(r['p99_us'] for r in found) / 1000:.2f} ms",
        ))  # fmt: skip
    report.table(
        "Revalidating a proxy channel's index against a hosted channel's",
        ["request", "channel", "requests/s per round", "median", "p50", "p99"],
        rows,
        note=f"Code: {common.commit()}. gunicorn 2x4 gthread, services database, wrk 64 "
        f"connections {DURATION} s per case, the channels alternating, {rounds} rounds; "
        f"{PACKAGES} packages in each; Bearer token on every request. Target: a proxy "
        "channel's 304 as fast as a hosted channel's.",
    )


def main(argv):
    report = common.Report("Revalidation")
    run(report, int(argv[0]) if argv else 3)
    report.write()


if __name__ == "__main__":
    main(sys.argv[1:])
