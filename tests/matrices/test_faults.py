"""Faults: a Celery worker killed in the middle of a rebuild, Redis gone during an upload,
PostgreSQL restarted under traffic, storage that fails mid-upload, readers racing rebuilds.

Real processes throughout — gunicorn, Celery workers and beat, a redis-server or a
PostgreSQL cluster of the test's own (the shared ones are never stopped) — and the same
verdict at the end: every upload answered 201 is published, and what is served is whole
and agrees with itself.
"""

import hashlib
import os
import random
import subprocess
import threading
import time

import msgpack
import orjson
import psycopg
import pytest
import redis
from django.core.files.storage import default_storage
from django.utils import timezone

from channels_app.lifecycle import create_channel
from packages_app import runner
from packages_app.index import bz2_refresh, publishing, rebuilds, reconcile, repodata
from packages_app.index import store as index_store
from packages_app.models import PackageFile, SubdirIndex

from ..packages import PackageFactory, eventually, upload, wait_for_index
from ..postgres import PrivatePostgres
from ..served import (
    call,
    delete,
    fetch,
    filenames,
    files_below,
    get,
    orphan_package_files,
    served_filenames,
    shard,
    unzstd,
)
from ..served import upload as upload_over_http

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

SUBDIR = "linux-64"


def stored_filenames(channel, subdir):
    rows = PackageFile.objects.filter(channel=channel, subdir=subdir)
    return set(rows.values_list("filename", flat=True))


def wait_until_idle(channel, subdir):
    """Until the index is current, no rebuild holds it and its .bz2 has followed."""

    def idle():
        index = SubdirIndex.objects.get(channel=channel, subdir=subdir)
        files = index.published_files
        assert index.is_current and not index.lease_owner and index.bz2_due_at is None
        assert files[repodata.REPODATA_BZ2]["source"] == files[repodata.REPODATA]["etag"]

    eventually(idle)


def unpublished_folders(channel, subdir):
    """Index folders in storage that are neither served nor kept for readers."""
    index = SubdirIndex.objects.get(channel=channel, subdir=subdir)
    base = index_store.index_folder(channel.pk, subdir)
    folders, _ = default_storage.listdir(base)
    return {f"{base}/{f}" for f in folders if f.startswith("r")} - {
        index.published_path,
        index.previous_path,
    }


# -- a worker killed mid-rebuild -----------------------------------------------------------


def test_it_completes_the_index_after_a_worker_is_killed_mid_rebuild(
    processes, public_channel, tokens, packages
):
    port = processes.redis().port
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        # The killed worker's folder must be gone at the end, not kept for readers.
        "WHARF_RETIRED_INDEX_SECONDS": "0",
    }
    server = processes.gunicorn(env)
    channel, token = public_channel.name, tokens["owner"]
    first = [packages.make(f"first{i}", "1.0", SUBDIR) for i in range(5)]
    for path in first:
        assert upload_over_http(server, channel, token, path)[0] == 201
    rebuilds.rebuild_until_current(public_channel.pk, SUBDIR)  # no worker yet
    # This worker stops between writing a rebuild's files and publishing them.
    doomed = processes.worker("doomed", env, paused=("publish", 600))
    second = [packages.make(f"second{i}", "1.0", SUBDIR) for i in range(5)]
    for path in second:
        assert upload_over_http(server, channel, token, path)[0] == 201

    def paused_mid_rebuild():
        index = SubdirIndex.objects.get(channel=public_channel, subdir=SUBDIR)
        assert index.lease_owner and unpublished_folders(public_channel, SUBDIR)

    eventually(paused_mid_rebuild)
    # Meanwhile clients get the previous index, whole.
    assert served_filenames(server, channel, token, SUBDIR) == {p.name for p in first}

    processes.kill(doomed)  # SIGKILL to the worker and its pool process

    broker = redis.Redis(port=port)
    assert broker.hlen("unacked") == 1  # acks_late: the task's message was never acknowledged
    # With the default settings: its lease lapses within seconds, and the successor sends
    # the rebuild once ready.
    processes.worker("successor", env)
    wait_for_index(public_channel, SUBDIR, timeout=30)
    expected = {p.name for p in first + second}
    assert stored_filenames(public_channel, SUBDIR) == expected
    assert served_filenames(server, channel, token, SUBDIR) == expected
    assert not PackageFile.objects.filter(state=PackageFile.State.PENDING).exists()

    def lease_released():
        assert SubdirIndex.objects.get(channel=public_channel, subdir=SUBDIR).lease_owner == ""

    eventually(lease_released)
    # The successor did it: the killed task's message is still waiting for Redis's
    # visibility timeout (an hour); delivered then, it will find nothing to do.
    assert broker.hlen("unacked") == 1
    assert rebuilds.rebuild_until_current(public_channel.pk, SUBDIR) == 0
    # What the killed worker wrote is deleted by the next publication.
    assert not unpublished_folders(public_channel, SUBDIR)


def test_it_rewrites_a_shard_left_incomplete_by_a_killed_writer(
    client_for, public_channel, packages
):
    owner = client_for("owner")
    path = packages.make("torn", "1.0", SUBDIR)
    assert upload(owner, public_channel.name, path).status_code == 201
    wait_for_index(public_channel, SUBDIR)
    digest = public_channel.subdir_indexes.get(subdir=SUBDIR).packages.get(name="torn").shard_sha256
    shard = index_store.shard_path(public_channel.pk, SUBDIR, digest)
    whole = default_storage.open(shard).read()
    with open(default_storage.path(shard), "wb") as torn:
        torn.write(whole[: len(whole) // 2])  # as a writer killed half-way leaves it

    assert owner.post(f"/api/v1/reindex/{public_channel.name}/{SUBDIR}").status_code == 202
    wait_for_index(public_channel, SUBDIR)

    assert default_storage.open(shard).read() == whole


@pytest.mark.index_left_behind
def test_it_publishes_nothing_once_its_lease_was_taken_over(public_channel, packages, client_for):
    owner = client_for("owner")
    assert upload(owner, public_channel.name, packages.make("kept", "1.0")).status_code == 201
    index = wait_for_index(public_channel, "noarch")
    served_before = index.published_path
    index.requested_revision += 1
    SubdirIndex.objects.filter(pk=index.pk).update(
        requested_revision=index.requested_revision, lease_owner="the-worker-that-took-over"
    )

    assert publishing.publish(index, index.requested_revision, owner="a-stalled-worker") is None

    index.refresh_from_db()
    assert index.published_path == served_before
    assert not unpublished_folders(public_channel, "noarch")


# -- the reconciler -------------------------------------------------------------------------


@pytest.mark.index_left_behind
def test_the_reconciler_sends_what_is_behind_now_or_when_its_lease_lapses(users, settings):

    behind, busy, current = (
        create_channel(users["owner"], name, private=False) for name in ("behind", "busy", "fine")
    )
    now = timezone.now()
    SubdirIndex.objects.filter(channel=behind).update(
        requested_revision=5, lease_owner="killed", lease_until=now - timezone.timedelta(seconds=1)
    )
    # Held by another process, which may be alive (it will publish) or dead (its lease
    # lapses within seconds, and nobody else would look again).
    lease_until = now + timezone.timedelta(seconds=2)
    SubdirIndex.objects.filter(channel=busy).update(
        requested_revision=5, lease_owner="elsewhere", lease_until=lease_until
    )

    rebuilds, _ = reconcile.reconcile()

    assert rebuilds == 2  # one now, one for when the lease lapses
    wait_for_index(behind, "noarch")  # embedded mode: at once; with Celery, by the worker
    busy_index = SubdirIndex.objects.get(channel=busy)
    assert not busy_index.is_current
    assert busy_index.recheck_at == lease_until + timezone.timedelta(seconds=1)
    assert reconcile.reconcile() == (0, 0)  # sent already
    wait_for_index(busy, "noarch", timeout=15)
    assert SubdirIndex.objects.get(channel=current).is_current
    assert reconcile.reconcile() == (0, 0)


def test_a_rebuild_that_finds_the_lease_held_elsewhere_looks_again_once_it_lapses(
    public_channel,
):

    lease_until = timezone.now() + timezone.timedelta(seconds=2)
    SubdirIndex.objects.filter(channel=public_channel).update(
        requested_revision=3, lease_owner="a-killed-worker", lease_until=lease_until
    )

    assert rebuilds.rebuild_until_current(public_channel.pk, "noarch") == 0  # held
    assert rebuilds.rebuild_until_current(public_channel.pk, "noarch") == 0  # sent once

    wait_for_index(public_channel, "noarch", timeout=15)

    def let_go():  # by whoever published (with Celery, a worker, just after)
        index = SubdirIndex.objects.get(channel=public_channel, subdir="noarch")
        assert index.lease_owner == "" and index.built_revision == 3

    eventually(let_go)


@pytest.mark.parametrize("lost", ["due long ago", "never scheduled"])
def test_the_reconciler_resends_a_lost_bz2_refresh(lost, client_for, public_channel, packages):

    owner = client_for("owner")
    assert upload(owner, public_channel.name, packages.make("late", "1.0")).status_code == 201
    runner.wait_for_background_work()
    wait_until_idle(public_channel, "noarch")
    index = SubdirIndex.objects.get(channel=public_channel, subdir="noarch")
    files = dict(index.published_files)
    files[repodata.REPODATA_BZ2] = dict(files[repodata.REPODATA_BZ2], source="an older one")
    long_ago = timezone.now() - bz2_refresh.BZ2_LOST_AFTER * 2
    # A stale .bz2 whose refresh task was lost (its worker died), or never sent.
    SubdirIndex.objects.filter(pk=index.pk).update(
        published_files=files,
        published_at=long_ago,
        bz2_due_at=long_ago if lost == "due long ago" else None,
    )

    assert reconcile.reconcile() == (0, 1)

    def bz2_follows_repodata():
        index.refresh_from_db()
        files = index.published_files
        assert files[repodata.REPODATA_BZ2]["source"] == files[repodata.REPODATA]["etag"]
        assert index.bz2_due_at is None

    eventually(bz2_follows_repodata)


@pytest.mark.index_left_behind
def test_embedded_mode_reconciles_in_the_background_at_most_once_an_interval(
    public_channel, monkeypatch
):
    now_and_then = runner.periodic(reconcile.reconcile)
    monkeypatch.setattr(now_and_then, "last_run", None)  # as in a process just started
    SubdirIndex.objects.filter(channel=public_channel).update(requested_revision=3)

    now_and_then()  # what background work is followed by in embedded mode
    runner.wait_for_background_work()
    wait_for_index(public_channel, "noarch")
    SubdirIndex.objects.filter(channel=public_channel).update(requested_revision=6)
    now_and_then()  # within WHARF_RECONCILE_SECONDS of the last: nothing
    runner.wait_for_background_work()

    assert not SubdirIndex.objects.get(channel=public_channel, subdir="noarch").is_current


def test_the_reconcile_indexes_command_catches_up(processes, public_channel):
    SubdirIndex.objects.filter(channel=public_channel).update(requested_revision=3)

    output = processes.run(["manage.py", "reconcile_indexes"])

    assert "Sent 1 index rebuilds and 0 .bz2 refreshes." in output
    wait_for_index(public_channel, "noarch")  # embedded mode: done before the command ended


# -- Redis down ----------------------------------------------------------------------------


@pytest.mark.parametrize("cache", ["per process", "on the broker's Redis"])
def test_an_upload_while_redis_is_down_is_never_accepted_and_lost(
    cache, processes, public_channel, tokens, packages
):
    """The upload is kept (201) and indexed once Redis is back, also when Django's cache
    is on the same Redis (the default): the failed-authentication limit fails open."""
    redis_process = processes.redis()
    port = redis_process.port
    env = {"REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    if cache == "per process":
        env["WHARF_CACHE_URL"] = ""
    server = processes.gunicorn(env)
    processes.worker("worker", env)
    channel, token = public_channel.name, tokens["owner"]
    before = packages.make("before", "1.0", SUBDIR)
    assert upload_over_http(server, channel, token, before)[0] == 201
    wait_until_idle(public_channel, SUBDIR)

    processes.kill(redis_process)
    during = packages.make("during", "1.0", SUBDIR)
    started = time.monotonic()
    status, body = upload_over_http(server, channel, token, during)
    seconds = time.monotonic() - started

    print(f"upload with Redis down, cache {cache}: {status} in {seconds:.1f} s: {body[:100]!r}")
    assert seconds < 30
    assert status == 201, body
    assert during.name in stored_filenames(public_channel, SUBDIR)
    assert not SubdirIndex.objects.get(channel=public_channel, subdir=SUBDIR).is_current
    processes.redis("redis-again", port)  # empty: whatever was queued is gone
    processes.beat(env)
    wait_for_index(public_channel, SUBDIR, timeout=60)
    after = packages.make("after", "1.0", SUBDIR)
    assert upload_over_http(server, channel, token, after)[0] == 201
    wait_for_index(public_channel, SUBDIR, timeout=60)

    expected = {before.name, during.name, after.name}
    assert stored_filenames(public_channel, SUBDIR) == expected
    assert served_filenames(server, channel, token, SUBDIR) == expected


# -- PostgreSQL restarted -------------------------------------------------------------------


@pytest.fixture
def private_postgresql(processes):
    cluster = PrivatePostgres(processes.free_port())
    yield cluster
    cluster.remove()


SETUP = """
from accounts.models import ApiToken, User
from channels_app.lifecycle import create_channel
owner = User.objects.create_user("owner", "owner@example.org", "pw")
create_channel(owner, "blip", private=False)
print(ApiToken.create_for(owner, "traffic")[1])
"""


def test_uploads_answered_201_survive_a_postgresql_restart(
    processes, private_postgresql, packages, tmp_path
):
    """Uploads and reads run while PostgreSQL stops for two seconds and starts again.

    A cluster of the test's own is really restarted (connections refused meanwhile), not
    the shared server; the stack has its own Redis and storage as well.
    """
    port = processes.redis().port
    env = {
        "DATABASE_URL": private_postgresql.url,
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "WHARF_DATA_DIR": str(tmp_path / "data"),
    }
    processes.run(["manage.py", "migrate", "--noinput"], env)
    token = processes.run(["manage.py", "shell", "-c", SETUP], env).split()[-1]
    server = processes.gunicorn(env)
    processes.worker("worker", env, concurrency=2)
    processes.beat(env)
    pool = [[packages.make(f"blip{t}x{i}", "1.0") for i in range(200)] for t in range(3)]
    uploads, reads, stop = [], [], threading.Event()

    def uploader(paths):
        # As a client does: a package refused with 5xx (or no answer) is sent again.
        for path in paths:
            while not stop.is_set():
                began = time.monotonic()
                status, body = upload_over_http(server, "blip", token, path)
                uploads.append((path.name, status, began, time.monotonic(), body[:200]))
                if status in (200, 201):
                    break
                time.sleep(0.2)

    def reader():
        while not stop.is_set():
            began = time.monotonic()
            status, body = call("GET", f"{server}/blip/noarch/repodata.json", token)
            if status == 200:
                try:
                    orjson.loads(body)
                except orjson.JSONDecodeError:
                    status = "not JSON"
            reads.append((status, began, time.monotonic()))

    threads = [threading.Thread(target=uploader, args=(paths,)) for paths in pool]
    threads += [threading.Thread(target=reader) for _ in range(2)]

    def accepted_since(moment):
        return sum(1 for _, status, began, *_ in list(uploads) if status == 201 and began > moment)

    def at_least_ten_accepted_since(moment):
        assert accepted_since(moment) >= 10

    for thread in threads:
        thread.start()
    # Traffic before and after the restart is counted in uploads accepted, not in seconds
    # (a loaded machine answers fewer in the same time).
    eventually(lambda: at_least_ten_accepted_since(0))
    blip_began = time.monotonic()
    private_postgresql.stop()
    time.sleep(2)
    private_postgresql.start()
    blip_ended = time.monotonic()
    eventually(lambda: at_least_ten_accepted_since(blip_ended), timeout=60)
    stop.set()
    for thread in threads:
        thread.join()

    def during_blip(began, ended, slack=3):
        return began <= blip_ended + slack and ended >= blip_began - slack

    accepted = {name for name, status, *_ in uploads if status == 201}
    # 200 to a package sent again: its first attempt was stored although its answer was
    # lost in the restart (the same bytes again change nothing). The file must be there.
    already = {name for name, status, *_ in uploads if status == 200}
    failed = [u for u in uploads if u[1] not in (200, 201)]
    failed_reads = [r for r in reads if r[0] != 200]
    print(
        f"{len(uploads)} upload requests: {len(accepted)} accepted, {len(already)} already "
        f"there, {len(failed)} failed; {len(reads)} reads, {len(failed_reads)} failed; "
        f"PostgreSQL away for {blip_ended - blip_began:.1f} s"
    )
    # Uploads were accepted before the restart and again after it, without a new client.
    assert accepted_since(0) - accepted_since(blip_began) >= 10
    assert accepted_since(blip_ended) >= 10
    # While the database is away Wharf says so: 503 (with Retry-After), never 500.
    assert [u for u in failed if u[1] != 503 or not during_blip(u[2], u[3])] == []
    assert [
        r for r in failed_reads if r[0] == "not JSON" or r[0] != 503 or not during_blip(*r[1:])
    ] == []

    def published():
        with psycopg.connect(private_postgresql.url) as db:
            behind = db.execute(
                "SELECT count(*) FROM packages_app_subdirindex"
                " WHERE built_revision < requested_revision"
            ).fetchone()[0]
            stored = {row[0] for row in db.execute("SELECT filename FROM packages_app_packagefile")}
        assert behind == 0
        return stored

    stored = eventually(published, timeout=60)
    assert accepted | already <= stored
    assert served_filenames(server, "blip", token, "noarch") == stored
    for name in stored:  # every file recorded is stored too
        assert get(server, "blip", token, f"noarch/{name}")


# -- storage failing -------------------------------------------------------------------------


@pytest.fixture
def small_storage(tmp_path, settings):
    """Storage on a 512 KiB tmpfs, so that writes fail with ENOSPC as on a full disk.

    Mounting needs root; otherwise the storage folder is made read-only (writes fail
    with EACCES before a byte is written).
    """
    folder = tmp_path / "storage"
    folder.mkdir()
    mounted = os.geteuid() == 0
    if mounted:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", folder], check=True)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": folder},
        },
    }
    yield folder, mounted
    if mounted:
        subprocess.run(["umount", "-l", folder], check=True)
    else:
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)


def test_an_upload_that_storage_cannot_hold_is_refused_and_nothing_is_kept(
    small_storage, users, tokens, client_for, packages, tmp_path
):
    folder, mounted = small_storage
    channel = create_channel(users["owner"], "tight", private=False)
    owner = client_for("owner")
    small = packages.make("small", "1.0")
    assert upload(owner, channel.name, small).status_code == 201
    wait_for_index(channel, "noarch")
    runner.wait_for_background_work()
    files_before = files_below(folder)
    if not mounted:
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir():
                path.chmod(0o555)
    big_factory = PackageFactory(tmp_path / "big")
    (big_factory.files / "blob.bin").write_bytes(os.urandom(1024 * 1024))  # does not compress
    big = big_factory.make("big", "1.0")

    response = upload(owner, channel.name, big)

    assert response.status_code == (507 if mounted else 503), response.content
    assert "could not be stored" in response.json()["detail"]
    assert not PackageFile.objects.filter(filename=big.name).exists()
    assert files_below(folder) == files_before
    assert orphan_package_files(channel) == set()
    assert stored_filenames(channel, "noarch") == {small.name}


# -- atomic publishing -----------------------------------------------------------------------


def test_readers_never_see_a_partial_or_mixed_index_while_it_is_rebuilt(
    live_server_url, public_channel, tokens, packages
):
    """Uploads, deletes and full reindexes rebuild the subdir over and over while readers
    fetch every index file: each body read must be whole (its ETag is the hash of what the
    rebuild wrote), parse, list every file that stays, and name only shards that exist
    with the hash they are named by."""
    channel, token = public_channel.name, tokens["owner"]
    staying = [packages.make(f"stay{i}", "1.0", SUBDIR) for i in range(10)]
    for path in staying:
        assert upload_over_http(live_server_url, channel, token, path)[0] == 201
    wait_for_index(public_channel, SUBDIR)
    staying_names = {f"stay{i}" for i in range(10)}
    staying = {p.name for p in staying}
    churn = [packages.make("churn", f"1.{i}", SUBDIR) for i in range(20)]
    every_file = staying | {p.name for p in churn}
    stop, reads, problems = threading.Event(), [], []

    def whole(name):
        status, headers, body = fetch("GET", f"{live_server_url}/{channel}/{SUBDIR}/{name}", token)
        assert status == 200, f"{name}: {status} {body[:200]!r}"
        # The ETag is the sha256 of the file as the rebuild wrote it: a body cut short, or
        # one a rebuild was still writing, does not match it.
        assert headers["ETag"].strip('"') == hashlib.sha256(body).hexdigest()[:32], name
        return body

    def check_one_round():
        in_json = set(orjson.loads(whole(repodata.REPODATA))["packages.conda"])
        in_zst = set(orjson.loads(unzstd(whole(repodata.REPODATA_ZST)))["packages.conda"])
        shard_index = msgpack.unpackb(unzstd(whole(repodata.SHARD_INDEX)))["shards"]
        assert staying_names <= set(shard_index) <= staying_names | {"churn"}
        in_shards = set()
        sample = {"churn", random.choice(sorted(staying_names))} & set(shard_index)
        for name in sample:  # not all: every read takes a core from the rebuilds
            in_shards |= filenames(shard(live_server_url, channel, token, SUBDIR, name,
                                         shard_index[name]))  # fmt: skip
        for seen in (in_json, in_zst, in_shards):
            assert seen <= every_file, "a file never uploaded"
        assert staying <= in_json and staying <= in_zst, "a file that stays is missing"

    def reader():
        while not stop.is_set():
            try:
                check_one_round()
                reads.append(True)
            except Exception as exc:  # every failure is reported at the end
                problems.append(repr(exc))

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for thread in readers:
        thread.start()
    rebuilds_before = SubdirIndex.objects.get(channel=public_channel, subdir=SUBDIR).rebuild_count
    try:
        for i, path in enumerate(churn):
            assert upload_over_http(live_server_url, channel, token, path)[0] == 201
            if i:
                gone = churn[i - 1].name
                assert delete(live_server_url, channel, token, SUBDIR, gone)[0] == 204
            if i % 5 == 0:
                url = f"{live_server_url}/api/v1/reindex/{channel}/{SUBDIR}"
                assert call("POST", url, token)[0] == 202
            time.sleep(0.05)
        wait_for_index(public_channel, SUBDIR)
    finally:
        stop.set()
        for thread in readers:
            thread.join()

    index = SubdirIndex.objects.get(channel=public_channel, subdir=SUBDIR)
    print(f"{len(reads)} consistent reads during {index.rebuild_count - rebuilds_before} rebuilds")
    assert problems == []
    assert len(reads) > 20
    assert index.rebuild_count - rebuilds_before >= 10
    assert served_filenames(live_server_url, channel, token, SUBDIR) == staying | {churn[-1].name}
    # Each index file served is exactly what the rebuild wrote (ETag: its sha256).
    for name in (repodata.REPODATA, repodata.REPODATA_ZST, repodata.SHARD_INDEX):
        body = get(live_server_url, channel, token, f"{SUBDIR}/{name}")
        assert index.published_files[name]["etag"] == hashlib.sha256(body).hexdigest()[:32]
