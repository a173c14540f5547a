"""Shared pieces of the benchmarks: environment, package generation, timing, reporting.

The benchmarks run in services mode against their own PostgreSQL database
(``wharf_bench``) and data directory (``var/bench``), never the development ones.
"""

import multiprocessing
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "var" / "bench"
PACKAGE_CACHE = BENCH_DIR / "packages"
REPORT = ROOT / "docs" / "benchmarks.md"
REDIS_URL = os.environ.get("WHARF_BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
# conda-forge has about 19 linux-64 builds per package name (465,679 records, about
# 25,000 names; see shared/reference/anchors.md).
BUILDS_PER_NAME = 20


def database_url():
    """The benchmark's PostgreSQL database: WHARF_BENCH_DATABASE_URL or wharf_bench."""
    return os.environ.get(
        "WHARF_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/wharf_bench"
    )


def data_dir():
    # Each benchmark database has its own data directory, so runs against different
    # databases never delete each other's files.
    return BENCH_DIR / "data" / database_url().rsplit("/", 1)[1]


def bench_env(**extra):
    """The environment of every process a benchmark starts."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="registry.settings",
        DATABASE_URL=database_url(),
        REDIS_URL=REDIS_URL,
        WHARF_DATA_DIR=str(data_dir()),
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def setup_django(**extra):
    os.environ.update(bench_env(**extra))
    import django

    django.setup()


def reset_database():
    """A fresh, migrated benchmark database and an empty data directory."""
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    name = connection.settings_dict["NAME"]
    connection.close()
    if connection.vendor == "postgresql":
        admin = database_url().rsplit("/", 1)[0] + "/postgres"
        for statement in (
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            f'CREATE DATABASE "{name}"',
        ):
            subprocess.run(["psql", admin, "-q", "-c", statement], check=True)
    shutil.rmtree(settings.DATA_DIR, ignore_errors=True)
    settings.DATA_DIR.mkdir(parents=True)
    call_command("migrate", verbosity=0)


def _make(args):
    folder, first, count, subdir = args
    import rattler_build

    files = Path(folder) / "_files"
    files.mkdir(parents=True, exist_ok=True)
    (files / "README").write_text("benchmark package\n")
    names = []
    for i in range(first, first + count):
        name_index = i // BUILDS_PER_NAME
        output = rattler_build.assemble_package(
            f"pkg{name_index:06d}",
            f"1.{i % BUILDS_PER_NAME}.0",
            subdir,
            f"h{i:08x}_0",
            folder,
            files_dir=files,
            # Every build depends on two other names, layered as libraries are: a name
            # needs lower-numbered ones, so one package's dependencies stay a small tree.
            depends=[f"pkg{name_index // 2:06d} >=1.0", f"pkg{name_index // 3:06d}"][
                : 2 if name_index else 0
            ],
            license="MIT",
            summary=f"Benchmark package number {name_index}",
            compression_level=1,
        )
        names.append(output.path)
    return names


def packages(count, subdir="linux-64"):
    """``count`` real package files in one subdir, made once and kept under var/bench."""
    folder = PACKAGE_CACHE / f"{subdir}-{count}"
    done = folder / ".complete"
    if done.exists():
        return sorted(p for p in folder.iterdir() if p.suffix == ".conda")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    workers = os.cpu_count() or 1
    step = 2000
    jobs = [
        (str(folder), start, min(step, count - start), subdir) for start in range(0, count, step)
    ]
    # Fresh interpreters: a fork of a process that has loaded rattler's runtime can die.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_make, jobs))
    done.write_text("")
    return sorted(p for p in folder.iterdir() if p.suffix == ".conda")


def extra_package(folder, name, subdir="linux-64", version="9.9.9"):
    """One more package, not part of any cached set."""
    import rattler_build

    folder = Path(folder)
    files = folder / "_files"
    files.mkdir(parents=True, exist_ok=True)
    (files / "README").write_text("extra\n")
    output = rattler_build.assemble_package(
        name, version, subdir, "h0_0", folder, files_dir=files, depends=["pkg000001 >=1.0"]
    )
    return Path(output.path)


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[position]


def median(values):
    return statistics.median(values) if values else float("nan")


def peak_rss_mb():
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited
    from the parent across exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def commit():
    """The checkout measured: its commit, and whether it has changes not committed."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
    )
    return head + (" with uncommitted changes" if dirty.stdout.strip() else "")


def machine():
    cpus = os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return f"{platform.machine()}, {cpus} cores, {memory:.0f} GiB, Python {sys.version.split()[0]}"


class Report:
    """Markdown tables appended to docs/benchmarks.md, one section per run."""

    def __init__(self, title):
        self.lines = [
            f"## {title} — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "",
            f"Machine: {machine()}.",
            "",
        ]

    def table(self, heading, columns, rows, note=None):
        self.lines += [f"### {heading}", ""]
        if note:
            self.lines += [note, ""]
        self.lines.append("| " + " | ".join(columns) + " |")
        self.lines.append("|" + "---|" * len(columns))
        for row in rows:
            self.lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
        self.lines.append("")
        print("\n".join(self.lines[-len(rows) - 3 :]), flush=True)

    def text(self, paragraph):
        self.lines += [paragraph, ""]

    def write(self):
        REPORT.parent.mkdir(exist_ok=True)
        if not REPORT.exists():
            REPORT.write_text(
                "# Benchmarks\n\nWritten by `make bench` (newest run last). Each run measures "
                "Wharf and the tools it is compared with side by side, on the same files.\n\n"
            )
        with REPORT.open("a") as out:
            out.write("\n".join(self.lines) + "\n")


def seconds(value):
    return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


def ms(value):
    return f"{value * 1000:.0f} ms"
