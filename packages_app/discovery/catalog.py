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
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Case, Count, Func, IntegerField, Q, Value, When, Window
from django.db.models.expressions import RawSQL
from django.db.models.functions import StrIndex, Upper

from packages_app.models import MAIN_LABEL, Package, PackageFile

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
        "pk", "name", "version", "subdir", "summary", "uploaded_at", "yanked_at"
    )
    by_name = {}
    for pk, name, version, subdir, summary, uploaded_at, yanked_at in files:
        entry = (pk, version, subdir, summary, uploaded_at, yanked_at is not None)
        by_name.setdefault(name, []).append(entry)
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
    """The catalog row of one name from its files' (pk, version, subdir, summary, time,
    yanked)."""
    # Latest by conda's version order, yanked files only when all are; among builds of
    # that version the newest upload.
    latest = max(entries, key=lambda e: (not e[5], rattler.Version(e[1]), e[4], e[0]))
    return Package(
        channel=channel,
        name=name,
        latest_version=latest[1],
        summary=latest[3],
        platforms=sorted({e[2] for e in entries}),
        file_count=len(entries),
        updated_at=max(e[4] for e in entries),
    )


def channeldata(channel, label=MAIN_LABEL):
    """channeldata.json: the packages of the files that carry ``label`` (``main``: those
    the channel's own URL serves) with their latest version's description.

    As in the catalog, a yanked version is the latest only when every file is yanked.
    """
    packages = {}
    subdirs = set()
    rows = PackageFile.objects.filter(channel=channel, labels__label=label).values_list(
        "name",
        "version",
        "subdir",
        "summary",
        "description",
        "license",
        "home",
        "dev_url",
        "doc_url",
        "uploaded_at",
        "yanked_at",
    )
    latest = {}
    for name, version, subdir, summary, description, license_, home, dev, doc, at, yanked in rows:
        subdirs.add(subdir)
        entry = packages.setdefault(name, {"subdirs": set()})
        entry["subdirs"].add(subdir)
        rank = (yanked is None, rattler.Version(version))
        if name not in latest or rank > latest[name]:
            latest[name] = rank
            entry.update(
                version=version,
                summary=summary or None,
                description=description or None,
                license=license_ or None,
                home=home or None,
                dev_url=dev or None,
                doc_url=doc or None,
                timestamp=int(at.timestamp()),
            )
    for entry in packages.values():
        entry["subdirs"] = sorted(entry["subdirs"])
    return {
        "channeldata_version": 1,
        "packages": dict(sorted(packages.items())),
        "subdirs": sorted(subdirs | {"noarch"}),
    }


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
    """Catalog rows of ``channels`` whose name or summary contains ``term``, ranked.

    Rank 0 is the exact name (case-insensitively), 1 a name starting with the term, 2 a
    name containing it elsewhere, 3 a match in the summary only; then by name, channel.
    """
    matches = Q(name__icontains=term) | Q(summary__icontains=term)
    packages = Package.objects.filter(channel__in=channels).filter(matches)
    if len(term) >= TRIGRAM and _sqlite_search_table():
        phrase = '"' + term.replace('"', '""') + '"'
        # A constant statement; the term only travels as a parameter.
        packages = packages.filter(pk__in=RawSQL(SQLITE_MATCHING_IDS, [phrase]))  # noqa: S611
    if connection.vendor == "postgresql":
        rank = NameRank(term)
    else:
        # SQLite's LIKE ignores (ASCII) case by itself; UPPER() would copy every name.
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


class NameRank(Func):
    """How a name matches a term: 0 exactly, 1 at its start, 2 elsewhere, 3 not at all.

    ``CASE <position of the term in the name> WHEN 0 THEN 3 WHEN 1 THEN <0 if the name
    equals the term else 1> ELSE 2 END``, both case-insensitive as ``icontains`` is on
    PostgreSQL (``UPPER()`` of both sides). One substring search per row, where a CASE
    of ``UPPER() LIKE`` costs up to three.
    """

    output_field = IntegerField()

    def __init__(self, term):
        position = StrIndex(Upper("name"), Upper(Value(term)))
        exact = Case(When(name__iexact=term, then=Value(0)), default=Value(1))
        super().__init__(position, exact)

    def as_sql(self, compiler, connection, **extra_context):
        position, exact = (compiler.compile(e) for e in self.get_source_expressions())
        sql = f"CASE {position[0]} WHEN 0 THEN 3 WHEN 1 THEN {exact[0]} ELSE 2 END"
        return sql, (*position[1], *exact[1])


def ids_with_total(packages):
    """(id, number of all rows) for each row of a ranked queryset, in its order."""
    return packages.annotate(total=Window(Count("pk"))).values_list("pk", "total")


class RankedPaginator(Paginator):
    """Pages of a ranked search: on PostgreSQL one scan of the matches per page.

    The page query selects only the ids of the page, each with ``COUNT(*) OVER ()`` (the
    number of all matches), instead of a count and a page query that would both read
    every match; then the page's rows are read by id. A page past the end falls back to
    Paginator (which counts, and raises EmptyPage); so does SQLite altogether.
    """

    def page(self, number):
        if connection.vendor != "postgresql":
            # SQLite computes a window over a materialized copy of every match, which
            # costs more there than counting them separately.
            return super().page(number)
        try:
            number = int(number)
        except (TypeError, ValueError):
            return super().page(number)
        if number < 1:
            return super().page(number)
        bottom = (number - 1) * self.per_page
        found = list(ids_with_total(self.object_list)[bottom : bottom + self.per_page])
        if not found and number > 1:
            return super().page(number)
        self.__dict__["count"] = found[0][1] if found else 0
        rows = self.object_list.model.objects.select_related("channel").in_bulk(
            [pk for pk, _ in found]
        )
        return self._get_page([rows[pk] for pk, _ in found], number, self)


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
