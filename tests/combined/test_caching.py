"""A combined channel's index files revalidate as a hosted channel's, change when a member
publishes, are built once for every process and request, and old builds are collected."""

import threading
import time
from datetime import timedelta

import orjson
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone

from packages_app.combined import cache
from packages_app.index.store import index_folder
from packages_app.models import CombinedIndex

from ..published import body
from .conftest import COMBINED, combine

pytestmark = pytest.mark.django_db(transaction=True)

SHARD_INDEX = "repodata_shards.msgpack.zst"
INDEX_FILES = [
    "repodata.json",
    "repodata.json.zst",
    "repodata.json.bz2",
    SHARD_INDEX,
    "current_repodata.json",
    "current_repodata.json.zst",
]


@pytest.mark.parametrize("name", INDEX_FILES)
def test_it_answers_304_to_a_client_that_has_the_file(name, client_for, team_all, team, publish_to):
    publish_to(team, "tool", "1.0")
    client = client_for("member")
    first = client.get(f"/{COMBINED}/noarch/{name}")

    again = client.get(f"/{COMBINED}/noarch/{name}", headers={"If-None-Match": first["ETag"]})

    assert first.status_code == 200
    assert first["ETag"].startswith('"') and not first["ETag"].startswith('W/"')
    assert first["Cache-Control"] == "private, no-cache"
    assert again.status_code == 304
    assert again["ETag"] == first["ETag"]


def test_a_public_combined_channel_may_be_kept_by_shared_caches(
    client_for, team, forge, publish_to
):
    assert combine(client_for("owner"), [forge.name], private=False).status_code == 201
    publish_to(forge, "tool", "1.0")

    response = client_for().get(f"/{COMBINED}/noarch/repodata.json")

    assert response["Cache-Control"] == "public, no-cache"


def test_a_members_upload_gives_a_new_etag_and_shows_at_once(
    client_for, team_all, team, forge, publish_to
):
    publish_to(team, "tool", "1.0")
    client = client_for("member")
    first = client.get(f"/{COMBINED}/noarch/repodata.json")

    added = publish_to(forge, "other", "2.0")
    again = client.get(
        f"/{COMBINED}/noarch/repodata.json", headers={"If-None-Match": first["ETag"]}
    )

    assert again.status_code == 200
    assert again["ETag"] != first["ETag"]
    assert added.name in orjson.loads(body(again))["packages.conda"]


def test_an_upload_to_another_subdir_changes_who_wins_here(
    client_for, team_all, team, forge, publish_to
):
    theirs = publish_to(forge, "tool", "9.0", subdir="noarch")
    client = client_for("member")
    before = orjson.loads(body(client.get(f"/{COMBINED}/noarch/repodata.json")))

    publish_to(team, "tool", "1.0", subdir="linux-64")
    after = orjson.loads(body(client.get(f"/{COMBINED}/noarch/repodata.json")))

    assert set(before["packages.conda"]) == {theirs.name}
    assert after["packages.conda"] == {}


def test_every_request_reuses_one_build(client_for, team_all, team, publish_to):
    publish_to(team, "tool", "1.0")
    client = client_for("member")

    tags = {client.get(f"/{COMBINED}/noarch/{name}")["ETag"] for name in INDEX_FILES[:2] * 3}

    assert len(tags) == 2
    assert CombinedIndex.objects.filter(subdir="noarch").count() == 1


@pytest.mark.parametrize("builder", ["merge.write_shard_index", "documents.write"])
def test_concurrent_first_requests_build_once(
    builder, client_for, team_all, team, publish_to, monkeypatch
):
    publish_to(team, "tool", "1.0")
    builds = []
    module, function = builder.split(".")
    real_write = getattr(getattr(cache, module), function)

    def slow_write(*args):
        builds.append(args)
        time.sleep(0.5)  # the others arrive while this one builds
        return real_write(*args)

    monkeypatch.setattr(getattr(cache, module), function, slow_write)
    answers = []

    def fetch():
        try:
            answers.append(client_for("member").get(f"/{COMBINED}/noarch/repodata.json"))
        finally:
            connection.close()

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [a.status_code for a in answers] == [200] * 4
    assert len({a["ETag"] for a in answers}) == 1
    assert len(builds) == 1


def test_a_build_whose_holder_died_is_taken_over_when_its_lease_lapses(
    client_for, team_all, team, publish_to, settings
):
    publish_to(team, "tool", "1.0")
    client = client_for("member")
    client.get(f"/{COMBINED}/noarch/repodata.json")
    # As a killed builder leaves it: the row leased, nothing built, a folder half written.
    row = CombinedIndex.objects.get()
    CombinedIndex.objects.filter(pk=row.pk).update(
        built_at=None, files={}, folder="", lease_owner="dead",
        lease_until=timezone.now() + timedelta(seconds=1),
    )  # fmt: skip
    left = f"{index_folder(team_all.pk, 'noarch')}/c{row.pk}-deadbeef/repodata.json"
    default_storage.save(left, ContentFile(b'{"info":'))

    started = timezone.now()
    response = client.get(f"/{COMBINED}/noarch/repodata.json")

    assert response.status_code == 200
    assert 0.9 < (timezone.now() - started).total_seconds() < 5
    assert CombinedIndex.objects.get().lease_owner == ""
    assert not default_storage.exists(left)


def test_old_builds_are_collected_beyond_the_last_few(
    client_for, team_all, team, publish_to, monkeypatch
):
    monkeypatch.setattr(cache, "TOUCH_SECONDS", 0)
    client = client_for("member")
    for version in range(cache.KEEP + 3):
        publish_to(team, "tool", f"1.{version}")
        assert client.get(f"/{COMBINED}/noarch/repodata.json").status_code == 200

    kept = CombinedIndex.objects.filter(channel=team_all, subdir="noarch")
    folders, _ = default_storage.listdir(index_folder(team_all.pk, "noarch"))
    assert kept.count() == cache.KEEP
    assert sorted(f for f in folders if f.startswith("c")) == sorted(
        row.folder.rsplit("/", 1)[1] for row in kept
    )


@pytest.mark.parametrize(
    "builder, name",
    [("merge.write_shard_index", SHARD_INDEX), ("documents.write", "repodata.json")],
)
def test_a_failed_build_lets_the_next_request_build_at_once(
    builder, name, client_for, team_all, team, publish_to, monkeypatch
):
    publish_to(team, "tool", "1.0")
    module, function = builder.split(".")
    real_write = getattr(getattr(cache, module), function)

    def failing_write(*args):
        monkeypatch.setattr(getattr(cache, module), function, real_write)
        raise OSError("the disk went away")

    monkeypatch.setattr(getattr(cache, module), function, failing_write)
    client = client_for("member")
    with pytest.raises(OSError, match="disk went away"):
        client.get(f"/{COMBINED}/noarch/{name}")
    started = time.monotonic()

    response = client.get(f"/{COMBINED}/noarch/{name}")

    assert response.status_code == 200
    assert time.monotonic() - started < 1
    assert CombinedIndex.objects.get().lease_owner == ""


def test_a_request_that_waited_too_long_for_another_build_is_asked_to_retry(
    client_for, team_all, team, publish_to, built_elsewhere, monkeypatch
):
    publish_to(team, "tool", "1.0")
    client = client_for("member")
    client.get(f"/{COMBINED}/noarch/repodata.json")
    built_elsewhere(CombinedIndex.objects.get(), built_at=None, files={})
    monkeypatch.setattr(cache, "WAIT_SECONDS", 0.3)

    response = client.get(f"/{COMBINED}/noarch/repodata.json")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "being built" in response.json()["detail"]
