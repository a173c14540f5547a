"""Stored objects that no committed row records are never lost track of: those of a
writer that died are deleted seconds after its lease lapsed, a live writer keeps its own
however long it takes, and a writer whose lease lapsed cannot record what is being
deleted (packages_app/staging.py)."""

import os
import time

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from packages_app import runner, staging
from packages_app.intake import cleanup
from packages_app.models import PackageFile, StagedFile

from ..conftest import ROOT
from ..packages import eventually, upload
from ..served import orphan_package_files

pytestmark = pytest.mark.django_db(transaction=True)

WRITER = """
import os, sys, time
sys.path.insert(0, {root!r})
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")
import django
django.setup()
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from channels_app.models import Channel
from packages_app import staging
channel = Channel.objects.get(pk={channel})
with staging.stage(channel, [{path!r}]):
    default_storage.save({path!r}, ContentFile(b"bytes of a package"))
    print("stored", flush=True)
    time.sleep(600)
"""


def object_path(channel, name="a-1.0-0.conda"):
    return f"packages/{channel.pk}/noarch/{os.urandom(8).hex()}/{name}"


def test_what_a_killed_writer_stored_is_deleted_once_its_lease_lapses(
    processes, public_channel, tmp_path, settings
):
    path = object_path(public_channel)
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(root=str(ROOT), channel=public_channel.pk, path=path))
    log = tmp_path / "writer.log"
    writer = processes.start(
        "writer", [str(script)], env={"WHARF_LEASE_SECONDS": "2"},
        ready=lambda: log.exists() and "stored" in log.read_text(),
    )  # fmt: skip
    time.sleep(3)  # longer than its lease: its keeper renews it
    assert staging.sweep() == 0
    assert default_storage.exists(path)

    processes.kill(writer)
    killed = time.monotonic()

    def swept():
        assert staging.sweep() == 1

    eventually(swept, timeout=10)
    assert time.monotonic() - killed < 2 + 3  # the lease, and a sweep's pause
    assert not default_storage.exists(path)
    assert not StagedFile.objects.exists()


def test_a_live_writer_keeps_its_objects_past_its_lease_and_commits_them(public_channel, settings):
    settings.WHARF_LEASE_SECONDS = 1
    path = object_path(public_channel)
    with staging.stage(public_channel, [path]) as staged:
        default_storage.save(path, ContentFile(b"slow"))
        time.sleep(2.5)  # a slow copy to storage
        assert staging.sweep() == 0
        with transaction.atomic():
            staged.commit()
    assert default_storage.exists(path)  # committed: kept when the block ends
    assert not StagedFile.objects.exists()


def test_a_writer_whose_lease_lapsed_cannot_record_what_a_sweep_deletes(public_channel):
    path = object_path(public_channel)
    with staging.stage(public_channel, [path]) as staged:
        default_storage.save(path, ContentFile(b"stalled"))
        # The writer stalled past its lease (its keeper could not renew it either).
        StagedFile.objects.filter(storage_path=path).update(held_until=None)
        assert staging.sweep() == 1
        assert not default_storage.exists(path)

        with pytest.raises(staging.StagingLost), transaction.atomic():
            staged.commit()


def test_an_object_left_to_delete_goes_unless_a_file_refers_to_it(
    public_channel, client_for, packages
):
    response = upload(client_for("owner"), public_channel.name, packages.make("kept"))
    assert response.status_code == 201
    runner.wait_for_background_work()  # the cleanup an upload may start sweeps too
    referenced = PackageFile.objects.get(channel=public_channel).storage_path
    forgotten = object_path(public_channel)
    default_storage.save(forgotten, ContentFile(b"a deleted file's bytes"))
    # What a process that committed a delete (or a replacement) leaves if it dies before
    # deleting the bytes; and a record whose object a file still refers to.
    for path in (forgotten, referenced):
        StagedFile.objects.create(channel=public_channel, storage_path=path)

    assert staging.sweep() == 1

    assert not default_storage.exists(forgotten)
    assert default_storage.exists(referenced)
    assert not StagedFile.objects.exists()
    assert not orphan_package_files(public_channel)


def test_deleting_and_replacing_files_leave_no_object_behind(public_channel, client_for, packages):
    owner = client_for("owner")
    first = packages.make("swap")
    assert upload(owner, public_channel.name, first).status_code == 201
    other = packages.make("swap", summary="other bytes")
    assert upload(owner, public_channel.name, other, force=True).status_code == 201
    gone = packages.make("gone")
    assert upload(owner, public_channel.name, gone).status_code == 201
    response = owner.delete(f"/api/v1/delete/{public_channel.name}/noarch/{gone.name}")
    assert response.status_code in (200, 204), response.content
    assert not PackageFile.objects.filter(filename=gone.name).exists()

    assert not orphan_package_files(public_channel)
    assert not StagedFile.objects.exists()


def test_a_process_that_starts_sweeps_again_once_the_leases_it_found_lapse(
    public_channel, settings
):
    settings.WHARF_LEASE_SECONDS = 1
    path = object_path(public_channel)
    default_storage.save(path, ContentFile(b"left by a process killed a moment ago"))
    StagedFile.objects.create(
        channel=public_channel, storage_path=path, holder="upload-dead",
        held_until=staging.leases.until(),
    )  # fmt: skip

    cleanup.reclaim_at_start()
    assert default_storage.exists(path)  # its lease had not lapsed yet
    runner.wait_for_background_work()

    assert not default_storage.exists(path)
    assert not StagedFile.objects.exists()


def test_an_object_whose_row_committed_is_kept_although_the_commit_looked_failed(
    public_channel, client_for, packages
):
    # A commit whose answer was lost: the row is there, the writer never heard of it.
    response = upload(client_for("owner"), public_channel.name, packages.make("lost-answer"))
    assert response.status_code == 201
    runner.wait_for_background_work()
    row = PackageFile.objects.get(channel=public_channel)
    path = object_path(public_channel)
    with staging.stage(public_channel, [path]):
        default_storage.save(path, ContentFile(b"bytes"))
        PackageFile.objects.filter(pk=row.pk).update(storage_path=path)

    assert default_storage.exists(path)
    assert not StagedFile.objects.exists()
