"""The package catalog: one ``Package`` row per (channel, package name), and its search.

``refresh`` recomputes catalog rows from the PackageFile rows. Every change to package
files calls it inside the changing transaction, so listings and search never lag behind
uploads, replacements and deletions.

Search runs in the database: it matches the name or the summary case-insensitively
(``icontains``) and ranks exact names first, then name prefixes, then other name
matches, then summary-only matches. On PostgreSQL, GIN trigram indexes on
``UPPER(name)`` and ``UPPER(summary)`` (migration 0002) serve the ``icontains`` filter;
on SQLite an FTS5 trigram table kept by triggers narrows the rows first.
"""

import rattler
from django.db import connection
from django.db.models import Case, IntegerField, Q, Value, When
from django.db.models.expressions import RawSQL

from .models import Package, PackageFile

# The SQLite full-text table that mirrors (name, summary) of packages_app_package, and
# the ids of the rows it finds for a phrase (the term is a parameter).
SQLITE_SEARCH_TABLE = "packages_app_package_fts"
SQLITE_MATCHING_IDS = (
    "SELECT rowid FROM packages_app_package_fts WHERE packages_app_package_fts MATCH %s"
)
# Shorter terms have no trigram; they are matched by scanning.
TRIGRAM = 3


def refresh(channel, names):
    """Recompute the catalog rows of ``names`` in ``channel`` from their package files.

    Call inside the transaction that changed the files. A name without files left loses
    its row.
    """
    names = sorted(set(names))
    if not names:
        return
    _lock(channel, names)
    files = PackageFile.objects.filter(channel=channel, name__in=names).values_list(
        "pk", "name", "version", "subdir", "summary", "uploaded_at"
    )
    by_name = {}
    for pk, name, version, subdir, summary, uploaded_at in files:
        by_name.setdefault(name, []).append((pk, version, subdir, summary, uploaded_at))
    rows = [_package(channel, name, entries) for name, entries in by_name.items()]
    gone = [name for name in names if name not in by_name]
    if gone:
        Package.objects.filter(channel=channel, name__in=gone).delete()
    if rows:
        Package.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["channel", "name"],
            update_fields=["latest_version", "summary", "platforms", "file_count", "updated_at"],
        )


def _package(channel, name, entries):
    """The catalog row of one name from its files' (pk, version, subdir, summary, time)."""
    # Latest by conda's version order; among builds of that version the newest upload.
    latest = max(entries, key=lambda e: (rattler.Version(e[1]), e[4], e[0]))
    return Package(
        channel=channel,
        name=name,
        latest_version=latest[1],
        summary=latest[3],
        platforms=sorted({e[2] for e in entries}),
        file_count=len(entries),
        updated_at=max(e[4] for e in entries),
    )


def _lock(channel, names):
    """Serialize catalog refreshes of the same names across transactions.

    Two uploads of one name to different subdirs commit independently; without the lock
    each would compute the row without the other's file. On PostgreSQL a transaction
    advisory lock per (channel, name), taken in name order, makes the second wait and
    then read the first one's committed file. SQLite transactions write one at a time.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.executemany(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            [(f"wharf-catalog:{channel.pk}:{name}",) for name in names],
        )


def search(channels, term):
    """Catalog rows of ``channels`` whose name or summary contains ``term``, ranked."""
    matches = Q(name__icontains=term) | Q(summary__icontains=term)
    packages = Package.objects.filter(channel__in=channels).filter(matches)
    if len(term) >= TRIGRAM and _sqlite_search_table():
        phrase = '"' + term.replace('"', '""') + '"'
        # A constant statement; the term only travels as a parameter.
        packages = packages.filter(pk__in=RawSQL(SQLITE_MATCHING_IDS, [phrase]))  # noqa: S611
    rank = Case(
        When(name__iexact=term, then=Value(0)),
        When(name__istartswith=term, then=Value(1)),
        When(name__icontains=term, then=Value(2)),
        default=Value(3),
        output_field=IntegerField(),
    )
    return (
        packages.select_related("channel")
        .annotate(rank=rank)
        .order_by("rank", "name", "channel__name")
    )


_sqlite_tables = {}


def _sqlite_search_table():
    """Whether this SQLite database has the FTS5 trigram table (SQLite >= 3.34)."""
    if connection.vendor != "sqlite":
        return False
    key = str(connection.settings_dict["NAME"])
    if key not in _sqlite_tables:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = %s",
                [SQLITE_SEARCH_TABLE],
            )
            _sqlite_tables[key] = cursor.fetchone() is not None
    return _sqlite_tables[key]
