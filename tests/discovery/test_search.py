"""The package catalog (one row per channel and name) and search over it."""

import threading

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from accounts.authentication import ANONYMOUS, Caller
from accounts.models import ApiToken
from channels_app.access import readable_channels
from channels_app.lifecycle import create_channel
from packages_app.discovery import catalog
from packages_app.intake.importing import import_files
from packages_app.models import Package, PackageFile

from ..packages import catalog_file, upload, wait_for_index

pytestmark = pytest.mark.django_db(transaction=True)


def catalog_of(channel):
    return {
        row.name: (row.latest_version, row.summary, row.platforms, row.file_count)
        for row in Package.objects.filter(channel=channel)
    }


def publish(client, channel, path, **kwargs):
    response = upload(client, channel.name, path, **kwargs)
    assert response.status_code == 201, response.content
    return response


def found(client, query):
    response = client.get("/api/v1/search", {"q": query})
    assert response.status_code == 200, response.content
    return [(entry["channel"], entry["name"]) for entry in response.json()["results"]]


# The catalog ---------------------------------------------------------------------------


def test_the_catalog_follows_uploads_by_conda_version_order(client_for, public_channel, packages):
    owner = client_for("owner")
    publish(owner, public_channel, packages.make("demo", "1.9", summary="nine"))
    publish(owner, public_channel, packages.make("demo", "1.10", "linux-64", summary="ten"))
    publish(owner, public_channel, packages.make("demo", "1.2", "osx-arm64", summary="two"))
    publish(owner, public_channel, packages.make("other", "0.1", summary="another one"))
    for subdir in ("noarch", "linux-64", "osx-arm64"):
        wait_for_index(public_channel, subdir)

    assert catalog_of(public_channel) == {
        "demo": ("1.10", "ten", ["linux-64", "noarch", "osx-arm64"], 3),
        "other": ("0.1", "another one", ["noarch"], 1),
    }
    listing = client_for().get(f"/api/v1/channels/{public_channel.name}/packages/").json()
    assert [(e["name"], e["latest_version"], e["platforms"]) for e in listing["results"]] == [
        ("demo", "1.10", ["linux-64", "noarch", "osx-arm64"]),
        ("other", "0.1", ["noarch"]),
    ]
    demo = client_for().get(f"/api/v1/channels/{public_channel.name}/packages/demo/").json()
    assert (demo["latest_version"], demo["summary"]) == ("1.10", "ten")
    assert [f["version"] for f in demo["files"]] == ["1.10", "1.9", "1.2"]  # by subdir


def test_the_catalog_follows_forced_replacements(client_for, public_channel, packages):
    owner = client_for("owner")
    publish(owner, public_channel, packages.make("swap", "2.0", summary="first build"))
    publish(owner, public_channel, packages.make("swap", "1.0", summary="older"))
    wait_for_index(public_channel, "noarch")
    replacement = packages.make("swap", "2.0", summary="second build", description="new bytes")

    publish(owner, public_channel, replacement, force=True)

    wait_for_index(public_channel, "noarch")
    assert catalog_of(public_channel) == {"swap": ("2.0", "second build", ["noarch"], 2)}
    assert found(client_for(), "second build") == [(public_channel.name, "swap")]
    assert found(client_for(), "first build") == []


def test_the_catalog_follows_deletions_and_drops_a_name_without_files(
    client_for, public_channel, packages
):
    owner = client_for("owner")
    for version, subdir in (("1.9", "noarch"), ("1.10", "linux-64")):
        publish(owner, public_channel, packages.make("gone", version, subdir, summary=version))
    wait_for_index(public_channel, "linux-64")
    files = {f.version: f for f in PackageFile.objects.filter(channel=public_channel)}

    def delete(package_file):
        url = f"/api/v1/delete/{public_channel.name}/{package_file.subdir}/{package_file.filename}"
        assert client_for("maintainer").delete(url).status_code == 204

    delete(files["1.10"])
    assert catalog_of(public_channel) == {"gone": ("1.9", "1.9", ["noarch"], 1)}

    delete(files["1.9"])
    assert catalog_of(public_channel) == {}
    assert found(client_for(), "gone") == []
    path = f"/api/v1/channels/{public_channel.name}/packages/gone/"
    assert client_for().get(path).status_code == 404
    wait_for_index(public_channel, "noarch")


def test_the_catalog_follows_bulk_imports(public_channel, packages):
    paths = [packages.make("bulk", f"1.{i}", "linux-64", summary=f"v{i}") for i in (8, 9, 10, 11)]
    paths.append(packages.make("solo", "3.0"))

    import_files(public_channel, paths, batch_size=2, workers=2)

    assert catalog_of(public_channel) == {
        "bulk": ("1.11", "v11", ["linux-64"], 4),
        "solo": ("3.0", "A demo package", ["noarch"], 1),
    }


def test_concurrent_changes_to_one_name_are_all_counted(public_channel):
    """A second transaction refreshing the same name waits and sees the first one's file."""
    first_refreshed, second_started = threading.Event(), threading.Event()
    errors = []

    def in_thread(subdir, before_commit):
        try:
            with transaction.atomic():
                catalog_file(public_channel, subdir, "race", "1.0")
                catalog.refresh(public_channel, ["race"])
                before_commit()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    def hold_until_the_second_starts():
        first_refreshed.set()
        second_started.wait(10)
        # Give the second transaction time to reach the catalog refresh and block there.
        threading.Event().wait(0.5)

    first = threading.Thread(target=in_thread, args=("linux-64", hold_until_the_second_starts))
    second = threading.Thread(target=in_thread, args=("osx-64", lambda: None))
    first.start()
    first_refreshed.wait(10)
    second.start()
    second_started.set()
    first.join(30)
    second.join(30)

    assert errors == []
    assert catalog_of(public_channel) == {"race": ("1.0", "", ["linux-64", "osx-64"], 2)}


# Search --------------------------------------------------------------------------------


@pytest.fixture
def catalog_rows(users, public_channel, private_channel):
    """Catalog rows written directly (search reads nothing else)."""
    other_private = create_channel(users["outsider"], "zz-hidden", private=True)
    now = timezone.now()
    rows = {
        public_channel: {
            "numpy": "Array computing",
            "numpy-base": "The core of numpy",
            "pynumpy": "Bindings",
            "scipy": "Uses numpy arrays",
            "arrow": "Columnar data",
            "Odd%_name": "Has LIKE wildcards",
            "quote": 'Says "hello"',
        },
        private_channel: {"numpy": "Our patched array library", "secret-tool": "Internal"},
        other_private: {"numpy-secret": "Nobody else's"},
    }
    for channel, entries in rows.items():
        Package.objects.bulk_create(
            Package(
                channel=channel,
                name=name,
                latest_version="1.0",
                summary=summary,
                platforms=["noarch"],
                file_count=1,
                updated_at=now,
            )  # fmt: skip
            for name, summary in entries.items()
        )
    return rows


PUBLIC, PRIVATE = "open-tools", "private-team"


def test_search_ranks_exact_then_prefix_then_name_then_summary_matches(client_for, catalog_rows):
    assert found(client_for("member"), "NumPy") == [
        (PUBLIC, "numpy"),  # exact names, by channel
        (PRIVATE, "numpy"),
        (PUBLIC, "numpy-base"),  # prefix
        (PUBLIC, "pynumpy"),  # elsewhere in the name
        (PUBLIC, "scipy"),  # summary only
    ]
    assert found(client_for(), "arr") == [
        (PUBLIC, "arrow"),
        (PUBLIC, "numpy"),
        (PUBLIC, "scipy"),
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [("%", ["Odd%_name"]), ("_", ["Odd%_name"]), ("d%_n", ["Odd%_name"]), ('"hello"', ["quote"]),
     ("hello", ["quote"]), ('"', ["quote"]), ("zzz", []), ("AYS", ["quote", "scipy"])],
)  # fmt: skip
def test_search_matches_the_term_literally(query, expected, client_for, catalog_rows):
    assert [name for _, name in found(client_for(), query)] == expected


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("anonymous", [(PUBLIC, "numpy-base")]),
        ("outsider", [(PUBLIC, "numpy-base"), ("zz-hidden", "numpy-secret")]),
        ("member", [(PUBLIC, "numpy-base")]),
        ("owner", [(PUBLIC, "numpy-base")]),
    ],
)
def test_search_shows_private_channels_only_to_their_members(
    who, expected, client_for, catalog_rows
):
    client = client_for(None if who == "anonymous" else who)
    assert found(client, "numpy-") == expected
    private_hits = [hit for hit in found(client, "secret") if hit[0] == PRIVATE]
    assert private_hits == ([(PRIVATE, "secret-tool")] if who in {"member", "owner"} else [])


def test_a_token_limited_to_another_channel_finds_nothing_private(
    users, client_for, public_channel, catalog_rows
):
    _, secret = ApiToken.create_for(users["member"], "public only", channels=[public_channel])

    results = found(client_for(secret=secret), "numpy") + found(client_for(secret=secret), "secret")

    assert results == [(PUBLIC, "numpy"), (PUBLIC, "numpy-base"), (PUBLIC, "pynumpy"),
                       (PUBLIC, "scipy")]  # fmt: skip


def test_search_pages_through_every_match(client_for, public_channel):
    now = timezone.now()
    Package.objects.bulk_create(
        Package(
            channel=public_channel,
            name=f"many{i:03d}",
            latest_version="1",
            summary="",
            platforms=[],
            file_count=1,
            updated_at=now,
        )  # fmt: skip
        for i in range(120)
    )
    pages, counts, url = [], set(), "/api/v1/search?q=many"
    while url:
        body = client_for().get(url).json()
        pages.append([entry["name"] for entry in body["results"]])
        counts.add(body["count"])
        url = body["next"]

    assert [len(page) for page in pages] == [50, 50, 20]
    assert sum(pages, []) == [f"many{i:03d}" for i in range(120)]
    assert counts == {120}
    last = client_for().get("/api/v1/search", {"q": "many", "page": "last"}).json()
    assert (last["count"], len(last["results"])) == (120, 20)
    for page in ("4", "0", "x"):
        response = client_for().get("/api/v1/search", {"q": "many", "page": page})
        assert response.status_code == 404, page
    nothing = client_for().get("/api/v1/search", {"q": "nothing-like-it"}).json()
    assert (nothing["count"], nothing["results"], nothing["next"]) == (0, [], None)


@pytest.mark.parametrize("term", ["numpy", "NUMPY", "arr", "um", "e", "%", "sec", "zzz", 's"h'])
def test_search_finds_exactly_what_a_scan_finds(term, users, catalog_rows):
    """The trigram index (PostgreSQL) or FTS table (SQLite) only narrows, never drops."""
    caller = Caller(users["outsider"])
    # Rows changed after insertion must be found by their new text, not the old one.
    Package.objects.filter(name="arrow").update(summary="numpy-compatible columns")
    Package.objects.filter(name="quote").delete()

    ids = [p.pk for p in catalog.search(readable_channels(caller), term)]

    readable = set(readable_channels(caller).values_list("pk", flat=True))
    expected = {
        p.pk
        for p in Package.objects.all()
        if p.channel_id in readable and (term.lower() in p.name.lower() + "\0" + p.summary.lower())
    }
    assert sorted(ids) == sorted(expected)
    assert len(ids) == len(set(ids))


def test_search_uses_the_text_indexes(catalog_rows):
    query = catalog.search(readable_channels(ANONYMOUS), "numpy")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            sql, params = query.query.sql_with_params()
            cursor.execute("SET enable_seqscan = off")  # the test table is tiny
            cursor.execute("EXPLAIN " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            cursor.execute("RESET enable_seqscan")
            assert "packages_app_package_name_trgm" in plan, plan
            assert "packages_app_package_summary_trgm" in plan, plan
        else:
            sql, params = query.query.sql_with_params()
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
            plan = "\n".join(str(row[-1]) for row in cursor.fetchall())
            assert "VIRTUAL TABLE INDEX" in plan, plan
