"""Search: latency of GET /api/v1/search over 100,000 catalog rows in 1,000 channels.

    python -m bench.search [PACKAGES [CHANNELS]]     (default 100000 1000)

Each database is measured in its own process: PostgreSQL (the benchmark database of
bench.common, WHARF_BENCH_DATABASE_URL) and SQLite in embedded mode (var/bench/sqlite).
1,000 channels are created, 10 % of them private; a member belongs to every private one
(and to some public ones). Catalog rows are inserted directly with bulk_create, so the
benchmark measures the query and not uploads; then the tables are analyzed. About 300
searches then go through the real view (Django test client, DRF, token authentication,
access filter, pagination): exact names, 3-letter prefixes, summary words and misses,
each anonymously and as the member with a Bearer token. Target: p95 <= 50 ms.
"""

import json
import os
import random
import subprocess
import sys
import time

from . import common

SQLITE_DATA_DIR = common.ROOT / "var" / "bench" / "sqlite"
PRIVATE_SHARE = 10  # every 10th channel is private
QUERIES_PER_KIND = 38  # 4 kinds x 38 terms x 2 callers ~ 300 requests
KINDS = ("exact name", "3-letter prefix", "summary word", "miss")


def _words(text):
    return tuple(text.split())


# A seeded vocabulary, so that both databases hold the same rows.
STEMS = _words(
    "arrow boost curl eigen fmt gdal hdf5 jpeg json lz4 numpy opencv png proj protobuf qt "
    "snappy spdlog sqlite ssl tbb tiff xml yaml zlib zstd blas lapack fftw gmp mpfr pcl "
    "ceres gtsam sophus octomap ompl fcl urdf kdl moveit nav2 grpc abseil re2 glog gflags "
    "cairo pango harfbuzz freetype openexr imath openvdb embree ispc usd alembic ptex"
)
SYLLABLES = _words("ka lo mi ne ra to vu zen tor bal cor dex fin gal hex jun kor lum mar nix")
ADJECTIVES = _words("fast small portable modern robust simple generic lightweight parallel typed")
NOUNS = _words(
    "parser library toolkit solver framework binding driver compiler codec allocator "
    "serializer renderer planner tracker kernel"
)
TOPICS = _words(
    "images geometry robotics networking compression linear algebra logging testing "
    "point clouds meshes audio video maps sensors"
)
MISSES = ("qqxz", "nonexistent-package", "zzzzzz", "xq-", "wharf-missing", "kkkjjj")


def _word(rng):
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3)))


def _name(rng):
    stem, other = rng.choice(STEMS), _word(rng)
    shape = rng.randrange(6)
    if shape == 0:
        return f"lib{stem}-{other}{rng.randint(1, 999)}"
    if shape == 1:
        return f"py-{stem}-{other}"
    if shape == 2:
        return f"{other}-{stem}"
    if shape == 3:
        return f"ros-humble-{stem}-{other}"
    if shape == 4:
        return f"r-{other}{stem}"
    return f"{stem}{rng.randint(1, 99)}-{other}"


def _summary(rng):
    words = [rng.choice(ADJECTIVES), rng.choice(NOUNS), "for", rng.choice(TOPICS)]
    if rng.random() < 0.3:
        words.insert(0, "A")
    return " ".join(words).capitalize()


def populate(packages, channels, rng):
    """Users, channels, memberships, a token and the catalog rows.

    Returns the member's token secret and every inserted name. A sixth of the names each
    start with ``lib``, ``py-`` and ``ros-``, so those 3-letter prefixes match 15-21 %
    of all rows: the expensive searches.
    """
    from django.utils import timezone

    from accounts.models import ApiToken, User
    from channels_app.models import Channel, Membership, Role
    from packages_app.models import Package

    owner = User.objects.create_user("bench-owner", "owner@example.org", "pw-bench-owner")
    member = User.objects.create_user("bench-member", "member@example.org", "pw-bench-member")
    rows = Channel.objects.bulk_create(
        Channel(name=f"{_word(rng)}-{i:04d}", private=i % PRIVATE_SHARE == 0, created_by=owner)
        for i in range(channels)
    )
    Membership.objects.bulk_create(
        [Membership(channel=c, user=owner, role=Role.OWNER) for c in rows]
        + [
            Membership(channel=c, user=member, role=Role.MEMBER)
            for i, c in enumerate(rows)
            if c.private or i % 20 == 1
        ]
    )
    now = timezone.now()
    per_channel = packages // channels
    catalog, names = [], []
    for channel in rows:
        seen = set()
        while len(seen) < per_channel:
            seen.add(_name(rng))
        for name in sorted(seen):
            catalog.append(
                Package(
                    channel=channel,
                    name=name,
                    latest_version=f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}",
                    summary=_summary(rng),
                    platforms=sorted(rng.sample(["linux-64", "osx-arm64", "win-64"], 2)),
                    file_count=rng.randint(1, 40),
                    updated_at=now,
                )
            )
            names.append(name)
    Package.objects.bulk_create(catalog, batch_size=5000)
    _, secret = ApiToken.create_for(member, "bench")
    return secret, names


def analyze():
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # VACUUM also moves the GIN indexes' pending entries into the index proper,
            # as autovacuum does in a running installation.
            cursor.execute("VACUUM ANALYZE")
        else:
            cursor.execute("ANALYZE")


def queries(names, rng):
    """(kind, term) pairs: exact names, 3-letter prefixes, summary words, misses."""
    chosen = []
    for name in rng.sample(names, QUERIES_PER_KIND):
        chosen.append(("exact name", name))
    for name in rng.sample(names, QUERIES_PER_KIND):
        chosen.append(("3-letter prefix", name[:3]))
    words = [w for w in ADJECTIVES + NOUNS + TOPICS if len(w) >= 3]
    for _ in range(QUERIES_PER_KIND):
        chosen.append(("summary word", rng.choice(words)))
    for i in range(QUERIES_PER_KIND):
        chosen.append(("miss", MISSES[i % len(MISSES)] + str(i)))
    rng.shuffle(chosen)
    return chosen


def plan(term):
    """The PostgreSQL plan of the search query for the anonymous caller (index names)."""
    from django.db import connection

    from accounts.authentication import ANONYMOUS
    from channels_app.access import readable_channels
    from packages_app.discovery import catalog

    # The first page's query as catalog.RankedPaginator runs it.
    query = catalog.search(readable_channels(ANONYMOUS), term)
    if connection.vendor == "postgresql":
        query = catalog.ids_with_total(query)
    query = query[:50]
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("EXPLAIN (COSTS OFF) " + sql, params)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        lines = [str(row[-1]) for row in cursor.fetchall()]
    # The nodes that read packages_app_package, enough to see which index serves it.
    scans = [
        line.strip().lstrip("-> ")
        for line in lines
        if "Scan" in line or "SCAN" in line or "SEARCH packages_app_package " in line
    ]
    return "; ".join(scans)


def measure(packages, channels, database):
    """Runs in its own process: load, search, print the timings as JSON."""
    extra = {"REDIS_URL": ""}
    if database == "sqlite":
        extra.update(DATABASE_URL="", WHARF_DATA_DIR=str(SQLITE_DATA_DIR))
    common.setup_django(**extra)
    from django.conf import settings
    from django.db import connection
    from django.test import Client

    if connection.vendor == "postgresql":
        common.reset_database()
    else:
        from django.core.management import call_command

        connection.close()
        for suffix in ("", "-wal", "-shm"):
            (settings.DATA_DIR / f"wharf.sqlite3{suffix}").unlink(missing_ok=True)
        call_command("migrate", verbosity=0)

    rng = random.Random(20261126)
    started = time.perf_counter()
    secret, names = populate(packages, channels, rng)
    analyze()
    load_seconds = time.perf_counter() - started

    client = Client(SERVER_NAME="localhost")
    callers = {"anonymous": {}, "member": {"HTTP_AUTHORIZATION": f"Bearer {secret}"}}
    chosen = queries(names, rng)
    for _kind, term in chosen[:20]:  # warm-up: connections, caches, the token check
        for headers in callers.values():
            client.get("/api/v1/search", {"q": term}, **headers)
    times = []
    load_before = os.getloadavg()[0]
    for kind, term in chosen:
        for caller, headers in callers.items():
            before = time.perf_counter()
            response = client.get("/api/v1/search", {"q": term}, **headers)
            elapsed = time.perf_counter() - before
            assert response.status_code == 200, response.content
            body = response.json()
            if kind == "miss":
                assert body["count"] == 0, (term, body["count"])
            elif kind == "exact name":
                assert caller == "anonymous" or body["results"][0]["name"] == term, (term, body)
            times.append({"caller": caller, "kind": kind, "seconds": elapsed,
                          "count": body["count"]})  # fmt: skip
    sample = {kind: term for kind, term in reversed(chosen)}
    print(
        json.dumps(
            {
                "database": connection.vendor,
                "load_seconds": load_seconds,
                "load_average": (load_before + os.getloadavg()[0]) / 2,
                "times": times,
                "plans": {kind: plan(term) for kind, term in sample.items()},
            }
        )
    )


def _in_process(packages, channels, database):
    argv = [sys.executable, "-m", "bench.search", "--one", database, str(packages), str(channels)]
    output = subprocess.run(argv, cwd=common.ROOT, env=common.bench_env(), check=True,
                            capture_output=True, text=True)  # fmt: skip
    return json.loads(output.stdout.strip().splitlines()[-1])


def _stats(times):
    values = [t["seconds"] for t in times]
    return [
        len(values),
        common.ms(common.median(values)),
        common.ms(common.percentile(values, 0.95)),
        common.ms(max(values)),
    ]


def run(report, packages=100_000, channels=1000):
    label = {"postgresql": "PostgreSQL (trigram GIN)", "sqlite": "SQLite (FTS5 trigram)"}
    rows, kind_rows, notes = [], [], []
    for database in ("postgresql", "sqlite"):
        result = _in_process(packages, channels, database)
        name = label[result["database"]]
        times = result["times"]
        rows.append([name, "all", *_stats(times)])
        for caller in ("anonymous", "member"):
            rows.append([name, caller, *_stats([t for t in times if t["caller"] == caller])])
        for kind in KINDS:
            of_kind = [t for t in times if t["kind"] == kind]
            matches = common.median([t["count"] for t in of_kind])
            kind_rows.append([name, kind, *_stats(of_kind), f"{matches:,.0f}"])
        notes.append(
            f"{name}: rows loaded in {common.seconds(result['load_seconds'])}; load average "
            f"during the searches {result['load_average']:.1f}. Scans per kind of query: "
            + "; ".join(f"*{kind}*: `{text}`" for kind, text in result["plans"].items())
        )
    report.table(
        f"Search over {packages:,} packages in {channels:,} channels",
        ["database", "caller", "requests", "p50", "p95", "max"],
        rows,
        note=(
            "GET /api/v1/search?q= through the Django test client (DRF view, token check, "
            "access filter, ranking, count and first page of 50). 10 % of the channels are "
            "private; the member reads all of those. Target: p95 <= 50 ms."
        ),
    )
    report.table(
        "Search by kind of query",
        ["database", "kind", "requests", "p50", "p95", "max", "median matches"],
        kind_rows,
    )
    for note in notes:
        report.text(note)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        measure(int(sys.argv[3]), int(sys.argv[4]), sys.argv[2])
        sys.exit()
    sizes = [int(arg) for arg in sys.argv[1:3]]
    report = common.Report("Search")
    run(report, *sizes)
    report.write()
