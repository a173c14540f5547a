"""Many clients uploading into one channel at once, with deletes in between, against a live
gunicorn and (with Redis) two Celery workers: the published index ends with exactly the
files that were uploaded and not deleted."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings

from packages_app.models import PackageFile, SubdirIndex

from ..packages import wait_for_index
from ..served import delete, orphan_package_files, served_filenames, upload

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

CLIENTS = 8
SUBDIRS = ("noarch", "linux-64")


def test_eight_clients_uploading_and_deleting_at_once_leave_exactly_the_expected_index(
    live_server_url, processes, public_channel, tokens, packages
):
    # With Celery: a second worker beside the tests' one, each with its own cached records.
    if settings.REDIS_URL:
        processes.worker("second-worker", concurrency=2)
    uploads_each = 100 if settings.REDIS_URL else 50
    channel, token = public_channel.name, tokens["maintainer"]
    # Ten names shared by all clients, so that they change the same shards at once.
    work = [
        [packages.make(f"c{i % 10}", f"{client}.{i}", SUBDIRS[i % 2]) for i in range(uploads_each)]
        for client in range(CLIENTS)
    ]

    def client(paths):
        """Upload each file; after every fourth, delete the one uploaded two before."""
        kept, failures = set(), []
        for i, path in enumerate(paths):
            status, body = upload(live_server_url, channel, token, path)
            if status != 201:
                failures.append((path.name, status, body[:200]))
                continue
            kept.add(path)
            if i % 4 == 3 and paths[i - 2] in kept:
                gone = paths[i - 2]
                status, body = delete(live_server_url, channel, token, gone.parent.name, gone.name)
                if status != 204:
                    failures.append((gone.name, status, body[:200]))
                kept.discard(gone)
        return kept, failures

    started = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(client, work))
    uploaded = time.monotonic() - started
    for subdir in SUBDIRS:
        wait_for_index(public_channel, subdir, timeout=120)
    settled = time.monotonic() - started

    assert [failure for _, failures in results for failure in failures] == []
    kept = set().union(*(kept for kept, _ in results))
    assert len(kept) == CLIENTS * (uploads_each - uploads_each // 4)
    for subdir in SUBDIRS:
        expected = {path.name for path in kept if path.parent.name == subdir}
        stored = PackageFile.objects.filter(channel=public_channel, subdir=subdir)
        assert set(stored.values_list("filename", flat=True)) == expected
        assert not stored.filter(state=PackageFile.State.PENDING).exists()
        assert served_filenames(live_server_url, channel, token, subdir) == expected
    assert orphan_package_files(public_channel) == set()
    rebuilds = sum(
        SubdirIndex.objects.filter(channel=public_channel).values_list("rebuild_count", flat=True)
    )
    print(
        f"{CLIENTS} clients x {uploads_each} uploads ({len(kept)} kept): sent in "
        f"{uploaded:.1f} s, indexed after {settled:.1f} s, {rebuilds} rebuilds"
    )
