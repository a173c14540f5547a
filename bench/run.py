"""`make bench`: every benchmark, one report appended to docs/benchmarks.md.

    python -m bench.run [NAME ...]     names: indexing freshness client_freshness uploads
                                       search serving load proxy mirror
                                       revalidate

BENCH_SIZES (default "1000,10000,100000") sets the channel sizes of indexing, freshness
and client_freshness (BENCH_CLIENT_UPLOADS, default 20, its uploads per size);
BENCH_LOAD_CLIENTS and BENCH_LOAD_SECONDS (default 100 and 60) shorten load;
BENCH_PROXY_RECORDS and BENCH_MIRROR_RECORDS (default 470000) size the proxied and
mirrored upstreams.
Run it on an otherwise idle machine: every figure is measured side by side with the tool
it is compared to, but other load still moves both.
"""

import importlib
import os
import sys

from . import common

ALL = (
    "indexing", "freshness", "client_freshness", "uploads", "search", "serving", "load",
    "proxy", "mirror", "revalidate",
)  # fmt: skip


def main(names):
    sizes = tuple(int(s) for s in os.environ.get("BENCH_SIZES", "1000,10000,100000").split(","))
    report = common.Report("make bench")
    try:
        for name in names:
            module = importlib.import_module(f"bench.{name}")
            print(f"== {name}", flush=True)
            if name in ("indexing", "freshness", "client_freshness"):
                module.run(report, sizes)
            elif name in ("proxy", "mirror"):
                variable = f"BENCH_{name.upper()}_RECORDS"
                module.run(report, int(os.environ.get(variable, 470_000)))
            else:
                module.run(report)
    finally:
        report.write()


if __name__ == "__main__":
    main(sys.argv[1:] or ALL)
