"""A combined channel of a hosted channel and a proxy of a conda-forge-sized upstream: what
a client waits for, and the memory the serving process takes, on the first requests, on
the same requests again, and after one more package in the hosted member.

    python -m bench.combined [--wharf-root BEFORE --wharf-root AFTER] [--rounds N]

``team-all`` = [``team`` (hosted, 100 real packages), ``forge`` (a proxy of a generated
linux-64 upstream of BENCH_COMBINED_RECORDS records, default 470,000, shaped as
conda-forge's; bench/proxy.py)]. The proxy's first copy is made once, before anything is
measured, by the last checkout named. Then each checkout in turn, alternating, measures
in a fresh process of its own (the combined channel's entries and folders deleted first,
so that its first requests build): requests go through Django's test client with a token,
in-process (``REDIS_URL=""``: what runs in the background runs in a thread of this
process). Peak RSS is the process's, reset before each request (``/proc/self/clear_refs``).
Every checkout uses the same database (WHARF_BENCH_DATABASE_URL, default
``wharf_bench_combined``) and data directory; the schema must be the same.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from . import common, proxy

# Run inside a checkout (cwd), with its own code. Prints one JSON line.
_SNIPPET = """
import json, sys, time
from pathlib import Path
from bench import common
common.data_dir = lambda: Path({data!r})
common.setup_django(REDIS_URL="", ALLOWED_HOSTS="testserver",
                    WHARF_UPSTREAM_PRIVATE_NETWORKS="1")
step = {step!r}
if step == "setup":
    from accounts.models import ApiToken, User
    from channels_app.lifecycle import create_channel
    from channels_app.sources import attach
    from packages_app.intake.importing import import_files
    from packages_app.upstream import refresh
    common.reset_database()
    owner = User.objects.create_user("bench", "bench@example.org", None)
    team = create_channel(owner, "team", private=True)
    assert import_files(team, common.packages(100), owner).imported == 100
    forge = create_channel(owner, "forge", kind="proxy")
    attach(forge, upstream={{"url": {url!r}, "refresh_seconds": 7 * 86400}})
    started = time.perf_counter()
    assert refresh.refresh_subdir(forge.pk, "linux-64") == "new"
    copy = {{"seconds": time.perf_counter() - started, "peak_mb": common.peak_rss_mb()}}
    combined = create_channel(owner, "team-all", kind="combined", private=True)
    attach(combined, combines=[team, forge])
    print(json.dumps({{"token": ApiToken.create_for(owner, "bench")[1], "copy": copy}}))
    sys.exit()

import msgpack, zstandard, io
from django.test import Client
from channels_app.models import Channel
from django.utils import timezone
from packages_app import storage
from packages_app.intake.importing import import_files
from packages_app.models import CombinedIndex

combined = Channel.objects.get(name="team-all")
CombinedIndex.objects.filter(channel=combined).delete()
storage.delete_tree(f"index/{{combined.pk}}")
client = Client(HTTP_AUTHORIZATION="Bearer {token}")
base = "/team-all/linux-64/"

def clear_peak():
    with open("/proc/self/clear_refs", "w") as out:
        out.write("5")

def get(name, look_for):
    clear_peak()
    started = time.perf_counter()
    response = client.get(base + name)
    size, found, tail = 0, False, b""
    chunks = response.streaming_content if response.streaming else [response.content]
    body = [] if name.endswith(".zst") else None
    for chunk in chunks:
        size += len(chunk)
        if body is not None:
            body.append(chunk)
        else:
            found = found or look_for.encode() in tail + chunk
            tail = chunk[-200:]
    seconds = time.perf_counter() - started
    if body is not None and response.status_code == 200:
        index = msgpack.unpackb(zstandard.ZstdDecompressor().stream_reader(
            io.BytesIO(b"".join(body))).read())
        found = look_for in index["shards"]
    return {{"status": response.status_code, "seconds": seconds, "bytes": size,
            "peak_mb": common.peak_rss_mb(), "shows_new": found}}

out = {{}}
extra_name = "added-{tag}"
out["first shard index"] = get("repodata_shards.msgpack.zst", extra_name)
out["first repodata.json"] = get("repodata.json", extra_name)
out["again: shard index"] = get("repodata_shards.msgpack.zst", extra_name)
out["again: repodata.json"] = get("repodata.json", extra_name)
extra = common.extra_package(Path({data!r}) / "extra", extra_name)
started = time.perf_counter()
assert import_files(Channel.objects.get(name="team"), [extra], workers=1).imported == 1
out["upload published in team"] = {{"seconds": time.perf_counter() - started}}
out["after upload: shard index"] = get("repodata_shards.msgpack.zst", extra_name)
out["after upload: repodata.json"] = get("repodata.json", extra_name)
clear_peak()
started = time.perf_counter()
# Until no build of team-all is under way (a build the request left to a thread).
building = CombinedIndex.objects.filter(channel=combined, lease_until__isnull=False)
while building.filter(lease_until__gt=timezone.now()).exists():
    time.sleep(0.05)
out["background work after it"] = {{"seconds": time.perf_counter() - started,
                                    "peak_mb": common.peak_rss_mb()}}
out["after upload: repodata.json again"] = get("repodata.json", extra_name)
print(json.dumps(out))
"""

STEPS = (
    "first shard index", "first repodata.json", "again: shard index", "again: repodata.json",
    "after upload: shard index", "after upload: repodata.json", "background work after it",
    "after upload: repodata.json again",
)  # fmt: skip


def _run(root, step, **values):
    code = _SNIPPET.format(data=str(common.data_dir()), step=step, **values)
    output = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=common.bench_env(REDIS_URL=""),
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    if output.returncode != 0:
        raise RuntimeError(f"{step} in {root} failed:\n{output.stderr[-4000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def _commit(root):
    return subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False,
    ).stdout.strip() or "?"  # fmt: skip


def _cell(result):
    if "status" not in result:
        return common.seconds(result["seconds"]), f"{result['peak_mb']:.0f} MB", "", ""
    shows = "yes" if result["shows_new"] else "no"
    return (
        common.seconds(result["seconds"]), f"{result['peak_mb']:.0f} MB",
        f"{result['status']}, {result['bytes'] / 1e6:.1f} MB", shows,
    )  # fmt: skip


def run(report, roots, records, rounds):
    names = ("before", "after") if len(roots) == 2 else [root.name for root in roots]
    labels = {root: f"{name} ({_commit(root)})" for name, root in zip(names, roots, strict=True)}
    proxy.write_upstream(records)
    server, url = proxy.serve()
    rows = []
    try:
        setup = _run(roots[-1], "setup", url=url, token="", tag="")
        print(f"proxy's first copy: {setup['copy']}", flush=True)
        for number in range(rounds):
            for root in roots if number % 2 == 0 else roots[::-1]:
                tag = f"{number}-{root.name}-{os.getpid()}"
                result = _run(root, "measure", url=url, token=setup["token"], tag=tag)
                for step in STEPS:
                    rows.append([number + 1, labels[root], step, *_cell(result[step])])
                    print(rows[-1], flush=True)
    finally:
        server.shutdown()
    report.table(
        f"Combined channel of a hosted channel (100 packages) and a proxy of a "
        f"{records:,}-record linux-64 upstream: requests for team-all/linux-64",
        ["round", "code", "request", "time", "peak RSS", "status, bytes", "shows the upload"],
        rows,
        note=(
            f"Proxy's first copy beforehand: {common.seconds(setup['copy']['seconds'])}, "
            f"{setup['copy']['peak_mb']:.0f} MB. Each checkout in a fresh process of its own, "
            'in-process (REDIS_URL=""), PostgreSQL; Django\'s test client with a token; '
            "the time includes reading the whole body. Peak RSS: of the serving process, "
            "reset before each request. 'after upload': one more package imported into "
            "team and its index published (in-process) just before. 'background work "
            "after it': until no build of team-all is under way (one that request left to "
            "a thread). Targets: "
            "the shard index after an upload within 2 s; no 503 when an older entry "
            "exists; peak RSS within 1.5 GB."
        ),
    )


def main(argv):
    os.environ.setdefault(
        "WHARF_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/wharf_bench_combined"
    )
    parser = argparse.ArgumentParser()
    parser.add_argument("--wharf-root", action="append", type=Path)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    roots = [root.resolve() for root in args.wharf_root or [common.ROOT]]
    records = int(os.environ.get("BENCH_COMBINED_RECORDS", 470_000))
    report = common.Report("Combined channel")
    run(report, roots, records, args.rounds)
    report.write()


if __name__ == "__main__":
    main(sys.argv[1:])
