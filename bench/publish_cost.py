"""The index publish time of two checkouts of Wharf, alternating, on one database.

    python -m bench.publish_cost --wharf-root BEFORE --wharf-root AFTER [SIZE ...]
    python -m bench.publish_cost --wharf-root ... --loaded-channel ID SIZE  (no import)

For each size (default 1000 100000) one linux-64 subdir is imported once (by the last
checkout), then each checkout in turn, alternating, publishes it: a full rebuild from
the database records in a fresh process, and the incremental rebuild after adding one
package (the second addition of a process: the first loads the records). Both
checkouts use the same database (WHARF_BENCH_DATABASE_URL) and data directory, so they
publish the same records; the schema must be the same.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from . import common

# Run inside a checkout (cwd), with its own code. Prints one JSON line.
_SNIPPET = """
import json, sys, time
from pathlib import Path
from bench import common
common.data_dir = lambda: Path({data!r})
common.setup_django(REDIS_URL="")
step = {step!r}
if step == "load":
    from bench.indexing import wharf_load
    channel, seconds = wharf_load(common.packages({size}))
    print(json.dumps({{"channel": channel.pk, "seconds": seconds}}))
    sys.exit()
from django.db import transaction
from channels_app.models import Channel
from packages_app.index import publishing, rebuilds
from packages_app.intake.importing import import_files
from packages_app.models import SubdirIndex
channel = Channel.objects.get(pk={channel})
if step == "full":
    with transaction.atomic():
        rebuilds.request_rebuild(channel, "linux-64", full=True, enqueue=False)
    index = SubdirIndex.objects.get(channel=channel, subdir="linux-64")
    started = time.perf_counter()
    publishing.publish(index, index.requested_revision)
    print(json.dumps({{"seconds": time.perf_counter() - started,
                      "peak_mb": common.peak_rss_mb()}}))
    sys.exit()
timings = []
original = rebuilds.publish
def timed_publish(*args, **kwargs):
    started = time.perf_counter()
    result = original(*args, **kwargs)
    timings.append(time.perf_counter() - started)
    return result
rebuilds.publish = timed_publish
folder = Path({data!r}) / "extra"
for number in range(4):
    extra = common.extra_package(folder, f"added-{{{tag!r}}}-{{number}}")
    assert import_files(channel, [extra], workers=1).imported == 1
print(json.dumps({{"first": timings[0], "then": timings[1:]}}))
"""


def _run(root, step, *, size=0, channel=0, tag=""):
    code = _SNIPPET.format(
        data=str(common.data_dir()), step=step, size=size, channel=channel, tag=tag
    )
    output = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=common.bench_env(REDIS_URL=""),
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(output.stdout.strip().splitlines()[-1])


def _commit(root):
    return subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False,
    ).stdout.strip() or "?"  # fmt: skip


def run(report, roots, sizes, rounds=2, loaded_channel=None):
    names = ("before", "after") if len(roots) == 2 else [root.name for root in roots]
    labels = {root: f"{name} ({_commit(root)})" for name, root in zip(names, roots, strict=True)}
    rows = []
    for size in sizes:
        if loaded_channel is None:
            loaded = _run(roots[-1], "load", size=size)
            print(f"{size:,} records imported in {loaded['seconds']:.1f} s", flush=True)
        else:  # measured again on what an earlier run loaded
            loaded = {"channel": loaded_channel}
        for number in range(rounds):
            order = roots if number % 2 == 0 else roots[::-1]
            for root in order:
                full = _run(root, "full", channel=loaded["channel"])
                tag = f"{number}{root.name}-{int(time.time())}"  # names new in every run
                added = _run(root, "add", channel=loaded["channel"], tag=tag)
                row = [
                    f"{size:,}", number + 1, labels[root],
                    common.seconds(full["seconds"]), f"{full['peak_mb']:.0f} MB",
                    common.ms(added["first"]), common.ms(statistics.median(added["then"])),
                ]  # fmt: skip
                print(row, flush=True)
                rows.append(row)
    report.table(
        "Index publish time, two checkouts alternating",
        ["records", "round", "code", "full publish", "peak RSS", "first add 1 (loads)",
         "add 1, median of 3"],
        rows,
        note=(
            "Full: `publishing.publish` of the whole subdir from its database records, in "
            "a fresh process. Add 1: the publish after importing one more package (the "
            "first of a process loads the records; the next three use them)."
        ),
    )  # fmt: skip


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--wharf-root", action="append", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--loaded-channel", type=int, help="measure this channel, no import")
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 100000])
    args = parser.parse_args(argv)
    report = common.Report("Index publish time, before and after")
    roots = [root.resolve() for root in args.wharf_root]
    try:
        run(report, roots, args.sizes, args.rounds, args.loaded_channel)
    finally:
        report.write()


if __name__ == "__main__":
    main(sys.argv[1:])
