import os
import time

import orjson
import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from packages_app.models import PackageFile, SubdirIndex

from ..packages import eventually, upload, wait_for_index

pytestmark = pytest.mark.django_db(transaction=True)


def _run(*args):
    from io import StringIO

    out = StringIO()
    call_command("check_storage", *args, stdout=out)
    return out.getvalue()


def _served(client, channel, subdir="linux-64"):
    response = client.get(f"/{channel.name}/{subdir}/repodata.json")
    assert response.status_code == 200
    return orjson.loads(b"".join(response.streaming_content))


@pytest.fixture
def uploaded(public_channel, packages, client_for):
    client = client_for("owner")
    for name in ("alpha", "beta"):
        path = packages.make(name, "1.0", "linux-64")
        assert upload(client, public_channel.name, path).status_code == 201
    wait_for_index(public_channel, "linux-64")
    return public_channel


def test_a_channel_whose_files_are_all_stored_is_reported_clean(uploaded):
    output = _run("--channel", uploaded.name)

    assert "2 package files checked, 0 missing, 0 orphans (0 deleted), 0 indexes rebuilt" in (
        output
    )


def test_a_recorded_file_missing_from_storage_is_named_and_fails_the_command(uploaded):
    lost = PackageFile.objects.get(channel=uploaded, name="alpha")
    default_storage.delete(lost.storage_path)

    with pytest.raises(CommandError, match="1 recorded package files are missing"):
        _run()

    assert PackageFile.objects.filter(pk=lost.pk).exists()  # never deleted by the check


def test_a_file_of_the_wrong_size_is_reported(uploaded):
    damaged = PackageFile.objects.get(channel=uploaded, name="beta")
    with open(default_storage.path(damaged.storage_path), "ab") as fh:
        fh.write(b"extra")

    with pytest.raises(CommandError) as raised:
        call_command("check_storage", stdout=open(os.devnull, "w"))  # noqa: SIM115

    assert "missing from storage" in str(raised.value)
    from packages_app.index.storage_check import check_storage

    report = check_storage()
    assert report.missing == [
        f"{uploaded.name}/linux-64/{damaged.filename}: {damaged.size + 5} bytes stored, "
        f"{damaged.size} recorded"
    ]


def test_old_orphans_are_reported_and_deleted_on_request_but_fresh_ones_are_kept(uploaded):
    old = default_storage.save(f"packages/{uploaded.pk}/linux-64/lost/x-1-0.conda", _bytes())
    fresh = default_storage.save(f"packages/{uploaded.pk}/linux-64/busy/y-1-0.conda", _bytes())
    an_hour_ago = time.time() - 3700
    os.utime(default_storage.path(old), (an_hour_ago, an_hour_ago))

    listed = _run()
    cleaned = _run("--delete-orphans")

    assert f"orphan: {old}" in listed
    assert fresh not in listed
    assert "1 orphans (1 deleted)" in cleaned
    assert not default_storage.exists(old)
    assert default_storage.exists(fresh)
    assert PackageFile.objects.filter(channel=uploaded).count() == 2


def test_missing_index_files_are_rebuilt_from_the_database(uploaded, client_for):
    client = client_for()
    before = _served(client, uploaded)
    index = SubdirIndex.objects.get(channel=uploaded, subdir="linux-64")
    for entry in index.published_files.values():
        default_storage.delete(entry["path"])

    output = _run()

    assert f"index rebuilt: {uploaded.name}/linux-64" in output
    wait_for_index(uploaded, "linux-64")
    assert _served(client, uploaded)["packages.conda"] == before["packages.conda"]
    assert "0 indexes rebuilt" in _run()


def test_an_index_published_before_current_repodata_is_rebuilt_with_it(uploaded, client_for):
    index = SubdirIndex.objects.get(channel=uploaded, subdir="linux-64")
    older = {k: v for k, v in index.published_files.items() if "current" not in k}
    SubdirIndex.objects.filter(pk=index.pk).update(published_files=older)
    url = f"/{uploaded.name}/linux-64/current_repodata.json"
    assert client_for().get(url).status_code == 404  # conda falls back to repodata.json

    output = _run()

    assert f"index rebuilt: {uploaded.name}/linux-64" in output
    wait_for_index(uploaded, "linux-64")
    served = orjson.loads(b"".join(client_for().get(url).streaming_content))
    assert sorted(served["packages.conda"]) == ["alpha-1.0-h1234_0.conda", "beta-1.0-h1234_0.conda"]


def test_the_upgrade_rebuilds_indexes_published_before_current_repodata(uploaded, client_for):
    import importlib

    from django.apps import apps

    from packages_app.index.reconcile import reconcile

    migration = importlib.import_module("packages_app.migrations.0009_current_repodata")
    index = SubdirIndex.objects.get(channel=uploaded, subdir="linux-64")
    older = {k: v for k, v in index.published_files.items() if "current" not in k}
    SubdirIndex.objects.filter(pk=index.pk).update(published_files=older)
    url = f"/{uploaded.name}/linux-64/current_repodata.json"
    assert client_for().get(url).status_code == 404

    migration.rebuild_indexes_without_current_repodata(apps, None)
    reconcile()  # as every web and Celery worker does when it starts

    wait_for_index(uploaded, "linux-64")
    served = orjson.loads(b"".join(client_for().get(url).streaming_content))
    assert sorted(served["packages.conda"]) == ["alpha-1.0-h1234_0.conda", "beta-1.0-h1234_0.conda"]


def test_an_unknown_channel_is_refused_by_name(db):
    with pytest.raises(CommandError, match="No channel named 'nope'"):
        _run("--channel", "nope")


def _bytes():
    from django.core.files.base import ContentFile

    return ContentFile(b"not referenced")


def test_a_missing_bz2_is_compressed_again_without_a_rebuild(uploaded, client_for, settings):
    settings.WHARF_BZ2_DELAY_SECONDS = 0
    index = SubdirIndex.objects.get(channel=uploaded, subdir="linux-64")
    from packages_app.index import bz2_refresh

    bz2_refresh.refresh_bz2(uploaded.pk, "linux-64")
    index.refresh_from_db()
    lost = index.published_files["repodata.json.bz2"]["path"]
    default_storage.delete(lost)

    output = _run()

    def compressed_again():
        index.refresh_from_db()
        entry = index.published_files.get("repodata.json.bz2")
        assert entry is not None
        assert entry["path"] != lost

    assert f"index rebuilt: {uploaded.name}/linux-64" in output
    eventually(compressed_again)
    assert index.built_revision == index.requested_revision  # no rebuild was requested
    response = client_for().get(f"/{uploaded.name}/linux-64/repodata.json.bz2")
    assert response.status_code == 200
