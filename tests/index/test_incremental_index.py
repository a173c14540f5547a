"""Incremental rebuilds publish exactly what a rebuild from scratch would."""

import bz2
import io
import os
import time

import msgpack
import orjson
import pytest
import zstandard
from django.db import transaction
from django.utils import timezone

from packages_app import runner
from packages_app.index import bz2_refresh, garbage, publishing, rebuilds, repodata
from packages_app.index import records as index_records
from packages_app.index import store as index_store
from packages_app.models import PackageFile, SubdirIndex, SubdirPackage

from ..packages import eventually, upload, wait_for_index

pytestmark = pytest.mark.django_db(transaction=True)


def body(response):
    return b"".join(response.streaming_content) if response.streaming else response.content


def from_scratch(channel, subdir):
    """repodata.json built from every live record in the database, ignoring all caches."""
    records = repodata.RecordSet(subdir)
    rows = PackageFile.objects.filter(
        channel=channel, subdir=subdir, state__in=index_records.LIVE_STATES
    ).values_list("filename", "name", "record_json", "yanked_at")
    records.replace_names([], rows)
    return records.repodata_json()


def shard_index(client, channel, subdir):
    data = body(client.get(f"/{channel.name}/{subdir}/repodata_shards.msgpack.zst"))
    return msgpack.unpackb(zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read())


def test_it_matches_a_rebuild_from_scratch_after_uploads_deletes_and_replacements(
    client_for, public_channel, packages
):
    owner = client_for("owner")
    paths = {}
    for name in ("alpha", "beta", "gamma"):
        for version in ("1.0", "2.0"):
            paths[name, version] = packages.make(name, version, "linux-64")
            assert upload(owner, public_channel.name, paths[name, version]).status_code == 201
    doomed = paths["beta", "1.0"]
    assert (
        owner.delete(f"/api/v1/delete/{public_channel.name}/linux-64/{doomed.name}").status_code
        == 204
    )
    for version in ("1.0", "2.0"):
        gone = paths["gamma", version]
        assert (
            owner.delete(f"/api/v1/delete/{public_channel.name}/linux-64/{gone.name}").status_code
            == 204
        )
    replacement = packages.make("alpha", "1.0", "linux-64", summary="rebuilt", description="new")
    assert upload(owner, public_channel.name, replacement, force=True).status_code == 201
    wait_for_index(public_channel, "linux-64")

    served = body(owner.get(f"/{public_channel.name}/linux-64/repodata.json"))

    assert served == from_scratch(public_channel, "linux-64")
    document = orjson.loads(served)
    assert sorted(document["packages.conda"]) == sorted(
        [paths["alpha", "1.0"].name, paths["alpha", "2.0"].name, paths["beta", "2.0"].name]
    )
    shards = shard_index(owner, public_channel, "linux-64")["shards"]
    assert sorted(shards) == ["alpha", "beta"]
    assert SubdirPackage.objects.get(name="gamma").shard_sha256 == publishing.NO_FILES


def test_a_worker_with_older_cached_records_drops_a_name_another_worker_emptied(
    client_for, public_channel, packages
):
    owner = client_for("owner")
    doomed = packages.make("beta", "1.0")
    for path in (packages.make("alpha", "1.0"), doomed):
        assert upload(owner, public_channel.name, path).status_code == 201
    wait_for_index(public_channel, "noarch")
    # This process is a worker that built the index with beta in it, and keeps its records.
    with transaction.atomic():
        rebuilds.request_rebuild(public_channel, "noarch", full=True, enqueue=False)
    index_records.record_sets.clear()
    rebuilds.rebuild_until_current(public_channel.pk, "noarch")
    kept = index_records.record_sets.take(SubdirIndex.objects.get(channel=public_channel).pk)
    # Another worker rebuilds after beta's only file is deleted.
    url = f"/api/v1/delete/{public_channel.name}/noarch/{doomed.name}"
    assert owner.delete(url).status_code == 204
    wait_for_index(public_channel, "noarch")
    assert upload(owner, public_channel.name, packages.make("gamma", "1.0")).status_code == 201
    wait_for_index(public_channel, "noarch")

    # The first worker builds the next revision from its older records.
    index_records.record_sets.put(SubdirIndex.objects.get(channel=public_channel).pk, *kept)
    with transaction.atomic():
        rebuilds.request_rebuild(public_channel, "noarch", ["gamma"], enqueue=False)
    rebuilds.rebuild_until_current(public_channel.pk, "noarch")

    served = body(owner.get(f"/{public_channel.name}/noarch/repodata.json"))
    assert sorted(orjson.loads(served)["packages.conda"]) == [
        "alpha-1.0-0.conda",
        "gamma-1.0-0.conda",
    ]
    assert served == from_scratch(public_channel, "noarch")
    assert sorted(shard_index(owner, public_channel, "noarch")["shards"]) == ["alpha", "gamma"]


def test_it_rewrites_only_the_shards_of_changed_names(client_for, public_channel, packages):
    owner = client_for("owner")
    for name in ("steady", "moving"):
        assert upload(owner, public_channel.name, packages.make(name, "1.0")).status_code == 201
    wait_for_index(public_channel, "noarch")
    before = shard_index(owner, public_channel, "noarch")["shards"]

    assert upload(owner, public_channel.name, packages.make("moving", "1.1")).status_code == 201
    wait_for_index(public_channel, "noarch")
    after = shard_index(owner, public_channel, "noarch")["shards"]

    assert after["steady"] == before["steady"]
    assert after["moving"] != before["moving"]
    shard = body(
        owner.get(f"/{public_channel.name}/noarch/shards/{after['moving'].hex()}.msgpack.zst")
    )
    moving = msgpack.unpackb(zstandard.ZstdDecompressor().stream_reader(io.BytesIO(shard)).read())
    assert sorted(moving["packages.conda"]) == ["moving-1.0-0.conda", "moving-1.1-0.conda"]


def test_it_rebuilds_correctly_without_cached_records(client_for, public_channel, packages):
    owner = client_for("owner")
    assert upload(owner, public_channel.name, packages.make("first", "1.0")).status_code == 201
    wait_for_index(public_channel, "noarch")
    index_records.record_sets.clear()  # as in a freshly started worker

    assert upload(owner, public_channel.name, packages.make("second", "1.0")).status_code == 201
    wait_for_index(public_channel, "noarch")

    served = body(owner.get(f"/{public_channel.name}/noarch/repodata.json"))
    assert served == from_scratch(public_channel, "noarch")
    assert sorted(orjson.loads(served)["packages.conda"]) == [
        "first-1.0-0.conda",
        "second-1.0-0.conda",
    ]


def test_it_rebuilds_every_shard_on_a_reindex_request(client_for, public_channel, packages):
    owner = client_for("owner")
    assert upload(owner, public_channel.name, packages.make("solo", "1.0")).status_code == 201
    wait_for_index(public_channel, "noarch")
    SubdirPackage.objects.filter(name="solo").update(shard_sha256="0" * 64)  # damaged bookkeeping

    assert owner.post(f"/api/v1/reindex/{public_channel.name}/noarch").status_code == 202
    wait_for_index(public_channel, "noarch")

    digest = shard_index(owner, public_channel, "noarch")["shards"]["solo"]
    assert digest != bytes(32)
    assert (
        owner.get(f"/{public_channel.name}/noarch/shards/{digest.hex()}.msgpack.zst").status_code
        == 200
    )


def test_it_keeps_bz2_in_step_once_the_queue_is_empty(client_for, public_channel, packages):
    owner = client_for("owner")
    assert upload(owner, public_channel.name, packages.make("zipped", "1.0")).status_code == 201
    wait_for_index(public_channel, "noarch")

    def bz2_matches_json():
        raw = body(owner.get(f"/{public_channel.name}/noarch/repodata.json"))
        compressed = body(owner.get(f"/{public_channel.name}/noarch/repodata.json.bz2"))
        assert bz2.decompress(compressed) == raw
        assert b"zipped-1.0-0.conda" in raw

    eventually(bz2_matches_json)


def test_it_compresses_bz2_once_per_served_repodata(client_for, public_channel, packages):
    owner = client_for("owner")
    assert upload(owner, public_channel.name, packages.make("once", "1.0")).status_code == 201
    wait_for_index(public_channel, "noarch")
    runner.wait_for_background_work()
    eventually(lambda: bz2_refresh.refresh_bz2(public_channel.pk, "noarch") is None)
    before = SubdirIndex.objects.get(channel=public_channel, subdir="noarch").published_files

    assert bz2_refresh.refresh_bz2(public_channel.pk, "noarch") is None

    after = SubdirIndex.objects.get(channel=public_channel, subdir="noarch").published_files
    assert after["repodata.json.bz2"] == before["repodata.json.bz2"]
    assert after["repodata.json.bz2"]["source"] == after["repodata.json"]["etag"]


def test_it_compresses_bz2_in_the_background_after_the_delay(
    client_for, public_channel, packages, settings
):
    owner = client_for("owner")
    assert upload(owner, public_channel.name, packages.make("first", "1.0")).status_code == 201
    wait_for_index(public_channel, "noarch")
    settings.WHARF_BZ2_DELAY_SECONDS = 1
    path = packages.make("later", "1.0")

    assert upload(owner, public_channel.name, path).status_code == 201
    wait_for_index(public_channel, "noarch")

    def bz2_shows_later():
        compressed = body(owner.get(f"/{public_channel.name}/noarch/repodata.json.bz2"))
        assert path.name.encode() in bz2.decompress(compressed)

    eventually(bz2_shows_later, timeout=60)


def test_it_keeps_replaced_folders_for_requests_that_looked_them_up(public_channel, settings):
    """A folder goes once it has been replaced for WHARF_RETIRED_INDEX_SECONDS: under a
    stream of uploads a request may look up a folder, then wait while two more rebuilds
    publish, before it opens the file."""
    index = SubdirIndex.objects.get(channel=public_channel, subdir="noarch")
    base = settings.STORAGE_DIR / index_store.index_folder(public_channel.pk, "noarch")
    now = time.time()
    # Folder name -> when its repodata.json was written (seconds ago).
    written = {"r901-a": 3 * 3600, "r902-b": 2 * 3600, "r903-c": 30, "r904-d": 5}
    for name, age in written.items():
        (base / name).mkdir(parents=True)
        (base / name / repodata.REPODATA).write_bytes(b"{}")
        os.utime(base / name / repodata.REPODATA, (now - age, now - age))
    prefix = index_store.index_folder(public_channel.pk, "noarch")
    SubdirIndex.objects.filter(pk=index.pk).update(
        published_path=f"{prefix}/r904-d", previous_path=f"{prefix}/r903-c", published_files={}
    )

    def left():
        return {p.name for p in base.iterdir() if p.name.startswith("r")}

    settings.WHARF_RETIRED_INDEX_SECONDS = 60
    garbage.collect_garbage(index)
    # r901 was replaced 2 h ago; r902 only 30 s ago (when r903 was written).
    assert left() == {"r902-b", "r903-c", "r904-d"}

    settings.WHARF_RETIRED_INDEX_SECONDS = 10
    garbage.collect_garbage(index)
    assert left() == {"r903-c", "r904-d"}  # the one served and the one before


def refresh_while_published_again(channel, owner, packages, monkeypatch, unscheduled=False):
    """Run a .bz2 refresh of noarch while another worker publishes a second package right
    after the refresh read the index; ``unscheduled``: that publication sends no
    compression of its own."""
    from django.db.models.query import QuerySet

    original_first = QuerySet.first
    publications = []

    def first_then_publish(queryset):
        found = original_first(queryset)
        if queryset.model is SubdirIndex and not publications:
            publications.append(True)
            with monkeypatch.context() as patched:
                if unscheduled:
                    patched.setattr(publishing, "schedule_bz2", lambda index: None)
                second = packages.make("second", "1.0")
                assert upload(owner, channel.name, second).status_code == 201
                wait_for_index(channel, "noarch")
        return found

    with monkeypatch.context() as patched:
        patched.setattr(QuerySet, "first", first_then_publish)
        bz2_refresh.refresh_bz2(channel.pk, "noarch")
    assert publications


def bz2_follows_the_served_document(index):
    def follows():
        index.refresh_from_db()
        files = index.published_files
        assert files["repodata.json.bz2"]["source"] == files["repodata.json"]["etag"]

    runner.wait_for_background_work()
    eventually(follows, timeout=10)


def test_a_publication_while_bz2_is_refreshed_gets_its_own_bz2(
    client_for, public_channel, packages, monkeypatch
):
    owner = client_for("owner")
    assert upload(owner, public_channel.name, packages.make("first", "1.0")).status_code == 201
    wait_for_index(public_channel, "noarch")
    index = SubdirIndex.objects.get(channel=public_channel, subdir="noarch")
    SubdirIndex.objects.filter(pk=index.pk).update(bz2_due_at=timezone.now())  # one is due
    refresh_while_published_again(public_channel, owner, packages, monkeypatch)
    # The refresh that read the first document did not overwrite the second's .bz2, and
    # the second publication's own compression came (or is due).
    bz2_follows_the_served_document(index)


def test_a_refresh_that_lost_the_race_schedules_the_newer_documents_compression(
    client_for, public_channel, packages, monkeypatch
):
    """A publication whose compression was not scheduled (its worker died after the
    switch, or it counted on a compression due then) is not left without a .bz2 until
    the reconciler notices: the refresh that finds its own document replaced sends it."""
    owner = client_for("owner")
    assert upload(owner, public_channel.name, packages.make("first", "1.0")).status_code == 201
    wait_for_index(public_channel, "noarch")
    runner.wait_for_background_work()
    index = SubdirIndex.objects.get(channel=public_channel, subdir="noarch")
    files = dict(index.published_files)
    files.pop(repodata.REPODATA_BZ2, None)
    SubdirIndex.objects.filter(pk=index.pk).update(published_files=files)
    refresh_while_published_again(public_channel, owner, packages, monkeypatch, unscheduled=True)
    bz2_follows_the_served_document(index)
