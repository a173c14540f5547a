"""Index rebuilds against a live server: concurrent uploads, coalescing, no lost package."""

import io
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import msgpack
import orjson
import pytest
import zstandard

from packages_app.index import rebuilds
from packages_app.models import SubdirIndex

from ..packages import multipart_body, wait_for_index

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def post_package(base_url, channel, token, path):
    data, content_type = multipart_body(path)
    request = urllib.request.Request(
        f"{base_url}/api/v1/upload/{channel}",
        data=data,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.status


def fetch(base_url, channel, token, path):
    request = urllib.request.Request(
        f"{base_url}/{channel}/{path}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def upload_all(base_url, channel, token, paths, threads):
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda p: post_package(base_url, channel, token, p), paths))


def test_it_indexes_20_simultaneous_uploads(live_server_url, private_channel, tokens, packages):
    paths = [packages.make(f"pkg{i:02d}", "1.0", "linux-64") for i in range(20)]

    statuses = upload_all(live_server_url, private_channel.name, tokens["owner"], paths, 20)

    assert statuses == [201] * 20
    wait_for_index(private_channel, "linux-64")
    token = tokens["member"]
    repodata = orjson.loads(
        fetch(live_server_url, private_channel.name, token, "linux-64/repodata.json")
    )
    assert sorted(repodata["packages.conda"]) == sorted(p.name for p in paths)
    shard_index = msgpack.unpackb(
        zstandard.ZstdDecompressor()
        .stream_reader(
            io.BytesIO(
                fetch(
                    live_server_url,
                    private_channel.name,
                    token,
                    "linux-64/repodata_shards.msgpack.zst",
                )
            )
        )
        .read()
    )
    assert sorted(shard_index["shards"]) == sorted(f"pkg{i:02d}" for i in range(20))
    for digest in shard_index["shards"].values():
        fetch(
            live_server_url,
            private_channel.name,
            token,
            f"linux-64/shards/{digest.hex()}.msgpack.zst",
        )


def test_it_coalesces_a_burst_of_uploads_into_fewer_rebuilds(
    live_server_url, public_channel, tokens, packages
):
    paths = [packages.make("burst", f"1.{i}", "noarch") for i in range(50)]
    before = SubdirIndex.objects.get(channel=public_channel, subdir="noarch").rebuild_count

    statuses = upload_all(live_server_url, public_channel.name, tokens["maintainer"], paths, 8)

    assert statuses == [201] * 50
    index = wait_for_index(public_channel, "noarch")
    repodata = orjson.loads(
        fetch(live_server_url, public_channel.name, tokens["member"], "noarch/repodata.json")
    )
    assert sorted(repodata["packages.conda"]) == sorted(p.name for p in paths)
    rebuilds = index.rebuild_count - before
    print(f"50 uploads caused {rebuilds} rebuilds")
    assert rebuilds < 50


def test_it_finishes_the_work_of_a_rebuild_whose_lease_expired(public_channel, settings):
    """A worker killed mid-rebuild leaves a lease behind; once it expires, work resumes."""
    from django.utils import timezone

    index = SubdirIndex.objects.get(channel=public_channel, subdir="noarch")
    SubdirIndex.objects.filter(pk=index.pk).update(
        requested_revision=index.requested_revision + 1,
        lease_owner="killed-worker",
        lease_until=timezone.now() - timezone.timedelta(seconds=1),
    )

    count = rebuilds.rebuild_until_current(public_channel.pk, "noarch")

    assert count == 1
    index.refresh_from_db()
    assert index.is_current and index.lease_owner == ""


@pytest.mark.index_left_behind  # held by a worker that does not exist, for 5 minutes
def test_it_leaves_a_held_lease_alone(public_channel):
    from django.utils import timezone

    index = SubdirIndex.objects.get(channel=public_channel, subdir="noarch")
    SubdirIndex.objects.filter(pk=index.pk).update(
        requested_revision=index.requested_revision + 1,
        lease_owner="busy-worker",
        lease_until=timezone.now() + timezone.timedelta(minutes=5),
    )

    assert rebuilds.rebuild_until_current(public_channel.pk, "noarch") == 0
    index.refresh_from_db()
    assert not index.is_current
