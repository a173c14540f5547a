"""Indexing: Wharf's full and incremental rebuilds next to rattler-index, same files.

    python -m bench.indexing [SIZE ...]        (default 1000 10000 100000)

conda-index 0.13 needs the `conda` package importable, and conda is not published on
PyPI, so it cannot be installed here; the comparison is with rattler-index alone.
"""

import asyncio
import json
import os
import shutil
import subprocess
import sys

from . import common

SUBDIR = "linux-64"


def rattler_index(files, folder):
    """Full index of a fresh copy of ``files``, then the re-index after adding one."""
    import rattler.index

    shutil.rmtree(folder, ignore_errors=True)
    (folder / SUBDIR).mkdir(parents=True)
    (folder / "noarch").mkdir()
    for path in files:
        os.link(path, folder / SUBDIR / path.name)

    def index(force):
        coroutine = rattler.index.index_fs(
            folder, target_platform=None, write_zst=True, write_shards=True, force=force
        )
        return asyncio.run(coroutine)

    full, _ = common.timed(index, True)
    extra = common.extra_package(folder / "_extra", "added-by-bench")
    os.link(extra, folder / SUBDIR / extra.name)
    incremental, _ = common.timed(index, False)
    size = {name: (folder / SUBDIR / name).stat().st_size for name in
            ("repodata.json", "repodata.json.zst", "repodata_shards.msgpack.zst")}  # fmt: skip
    return full, incremental, size


def wharf_load(files):
    """A fresh database with one channel holding ``files``; returns (channel, import s)."""
    from accounts.models import User
    from channels_app.lifecycle import create_channel
    from packages_app.intake.importing import import_files

    common.reset_database()
    owner = User.objects.create_user("bench", "bench@example.org", None)
    channel = create_channel(owner, "bench", private=True)
    seconds, result = common.timed(import_files, channel, files, owner)
    assert result.imported == len(files), result.refused
    return channel, seconds


def full_rebuild_in_fresh_process(channel_id):
    """Full rebuild in a new process, so that its peak memory is the rebuild's own."""
    output = subprocess.run(
        [sys.executable, "-m", "bench.indexing", "--rebuild", str(channel_id)],
        cwd=common.ROOT, env=common.bench_env(REDIS_URL=""), check=True,
        capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(output.stdout.strip().splitlines()[-1])


def _rebuild(channel_id):
    common.setup_django(REDIS_URL="")
    from django.db import transaction

    from channels_app.models import Channel
    from packages_app.index import publishing, rebuilds
    from packages_app.models import SubdirIndex

    baseline = common.peak_rss_mb()
    channel = Channel.objects.get(pk=channel_id)
    with transaction.atomic():
        rebuilds.request_rebuild(channel, SUBDIR, full=True, enqueue=False)
    index = SubdirIndex.objects.get(channel=channel, subdir=SUBDIR)
    seconds, stats = common.timed(publishing.publish, index, index.requested_revision)
    # .bz2 is not part of the rebuild (it follows within WHARF_BZ2_DELAY_SECONDS): time
    # one compression of what was just published.
    from django.core.files.storage import default_storage

    from packages_app.index import repodata

    index.refresh_from_db()
    with default_storage.open(index.published_files[repodata.REPODATA]["path"], "rb") as raw:
        stats["bz2_seconds"], _ = common.timed(repodata.bz2_compress, raw.read())
    stats.update(total=seconds, baseline_mb=baseline, peak_mb=common.peak_rss_mb())
    print(json.dumps(stats))


def add_one_and_reindex(channel, folder, name):
    """Wharf's counterpart of re-running rattler-index after adding one file."""
    from packages_app.intake.importing import import_files

    extra = common.extra_package(folder, name)
    seconds, result = common.timed(import_files, channel, [extra], workers=1)
    assert result.imported == 1
    return seconds


def run(report, sizes=(1000, 10000, 100000)):
    common.setup_django(REDIS_URL="")  # index rebuilds run in this process, after commit
    from packages_app.index import records as index_records

    rows, sizes_rows = [], []
    for size in sizes:
        files = common.packages(size)
        r_full, r_incremental, r_sizes = rattler_index(files, common.BENCH_DIR / "rattler")
        channel, import_seconds = wharf_load(files)
        full = full_rebuild_in_fresh_process(channel.pk)
        index_records.record_sets.clear()
        # The first change after a restart loads the records; the second is the steady state.
        add_one_and_reindex(channel, common.BENCH_DIR / "extra", "warm-up-by-bench")
        incremental = add_one_and_reindex(channel, common.BENCH_DIR / "extra", "added-by-bench")
        rows.append([
            f"{size:,}",
            common.seconds(r_full), common.seconds(full["seconds"]),
            f"{r_full / full['seconds']:.1f}x",
            common.seconds(full["bz2_seconds"] or 0),
            common.seconds(r_incremental), common.ms(incremental),
            f"{r_incremental / incremental:.0f}x",
            f"{full['peak_mb']:.0f} MB ({full['baseline_mb']:.0f} before)",
            common.seconds(import_seconds),
        ])  # fmt: skip
        served = _served_sizes(channel)
        sizes_rows.append([
            f"{size:,}",
            f"{r_sizes['repodata.json'] / 1e6:.1f} / {served['repodata.json'] / 1e6:.1f} MB",
            f"{r_sizes['repodata.json.zst'] / 1e6:.2f} / "
            f"{served['repodata.json.zst'] / 1e6:.2f} MB",
            f"{r_sizes['repodata_shards.msgpack.zst'] / 1e3:.0f} / "
            f"{served['repodata_shards.msgpack.zst'] / 1e3:.0f} kB",
        ])  # fmt: skip
    report.table(
        "Indexing one linux-64 subdir (rattler-index vs Wharf)",
        ["records", "rattler-index full", "Wharf full", "Wharf faster by",
         "+ .bz2 after", "rattler-index add 1", "Wharf add 1", "Wharf faster by",
         "Wharf full rebuild peak RSS", "Wharf import (check + store)"],
        rows,
        note=(
            "Full = repodata.json + .zst + shards from nothing (Wharf: from its database "
            "records, in a fresh process; .bz2 is written after the others are served). "
            "Add 1 = one more package, then re-index (rattler-index: re-run on the "
            "directory; Wharf: check, store and record the file, then an incremental "
            "rebuild with the records kept in memory). conda-index cannot be installed "
            "here (conda is not on PyPI)."
        ),
    )  # fmt: skip
    report.table(
        "Published sizes (rattler-index / Wharf)",
        ["records", "repodata.json", "repodata.json.zst", "shard index"],
        sizes_rows,
    )


def _served_sizes(channel):
    from packages_app.models import SubdirIndex

    index = SubdirIndex.objects.get(channel=channel, subdir=SUBDIR)
    return {name: entry["size"] for name, entry in index.published_files.items()}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--rebuild"]:
        _rebuild(int(sys.argv[2]))
    else:
        chosen = tuple(int(arg) for arg in sys.argv[1:]) or (1000, 10000, 100000)
        report = common.Report("Indexing")
        run(report, chosen)
        report.write()
