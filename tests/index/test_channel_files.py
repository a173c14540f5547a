"""What conda clients read: repodata in every form, CEP-16 shards, packages, caching."""

import asyncio
import bz2
import hashlib
import io
import shutil

import msgpack
import orjson
import pytest
import rattler
import zstandard

from packages_app import runner
from packages_app.index import bz2_refresh, publishing, repodata
from packages_app.models import SubdirIndex, SubdirPackage

from ..packages import eventually, upload, wait_for_index

pytestmark = pytest.mark.django_db(transaction=True)


def body(response):
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def unzstd(data):
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()


@pytest.fixture
def published(client_for, public_channel, packages):
    """A public channel with .conda and .tar.bz2 files in noarch and linux-64."""
    paths = [
        packages.make("app", "1.0", "linux-64", depends=["lib >=2", "python"]),
        packages.make("app", "1.1", "linux-64", depends=["lib >=2"], extension=".tar.bz2"),
        packages.make("lib", "2.0", "noarch", license="BSD-3-Clause", summary="The lib"),
        packages.make("lib", "2.1", "noarch", extension=".tar.bz2"),
    ]
    owner = client_for("owner")
    for path in paths:
        assert upload(owner, public_channel.name, path).status_code == 201
    wait_for_index(public_channel, "noarch")
    wait_for_index(public_channel, "linux-64")
    return public_channel, paths


def test_it_publishes_the_records_rattler_index_writes(published, client_for, tmp_path):
    channel, paths = published
    reference_dir = tmp_path / "reference"
    for path in paths:
        (reference_dir / path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, reference_dir / path.parent.name / path.name)
    asyncio.run(rattler.index.index_fs(reference_dir, write_zst=False, write_shards=False))

    for subdir in ("noarch", "linux-64"):
        reference = orjson.loads((reference_dir / subdir / "repodata.json").read_bytes())
        ours = orjson.loads(body(client_for().get(f"/{channel.name}/{subdir}/repodata.json")))
        assert ours["info"]["subdir"] == subdir
        assert ours["repodata_version"] == 1
        for key in ("packages", "packages.conda"):
            assert ours[key].keys() == reference[key].keys()
            for filename, record in reference[key].items():
                mine = dict(ours[key][filename])
                # The moment of indexing differs between the two runs, nothing else may.
                assert "indexed_timestamp" in mine
                mine.pop("indexed_timestamp")
                record.pop("indexed_timestamp", None)
                assert mine == record, filename


def test_it_serves_the_same_document_compressed(published, client_for):
    channel, _ = published
    anonymous = client_for()
    raw = body(anonymous.get(f"/{channel.name}/linux-64/repodata.json"))
    zst = anonymous.get(f"/{channel.name}/linux-64/repodata.json.zst")

    def compressed_to_bz2_as_well():
        # With a worker, the .bz2 follows in a task of its own, after the index.
        bz = anonymous.get(f"/{channel.name}/linux-64/repodata.json.bz2")
        assert bz.status_code == 200
        assert bz2.decompress(body(bz)) == raw

    assert zst["Content-Type"] == "application/zstd"
    assert unzstd(body(zst)) == raw
    eventually(compressed_to_bz2_as_well)


def test_it_publishes_cep16_shards_for_every_package_name(published, client_for):
    channel, paths = published
    anonymous = client_for()
    index_response = anonymous.get(f"/{channel.name}/linux-64/repodata_shards.msgpack.zst")
    index = msgpack.unpackb(unzstd(body(index_response)))
    repodata = orjson.loads(body(anonymous.get(f"/{channel.name}/linux-64/repodata.json")))

    assert index["version"] == 1
    assert index["info"]["subdir"] == "linux-64"
    assert index["info"]["base_url"] == ""
    assert index["info"]["shards_base_url"] == "./shards/"
    assert list(index["shards"]) == ["app"]
    digest = index["shards"]["app"]
    assert isinstance(digest, bytes) and len(digest) == 32

    shard_response = anonymous.get(f"/{channel.name}/linux-64/shards/{digest.hex()}.msgpack.zst")
    assert shard_response.status_code == 200
    assert "immutable" in shard_response["Cache-Control"]
    compressed = body(shard_response)
    assert hashlib.sha256(compressed).digest() == digest
    shard = msgpack.unpackb(unzstd(compressed))
    assert set(shard) == {"packages", "packages.conda", "removed"}
    for key in ("packages", "packages.conda"):
        assert shard[key].keys() == repodata[key].keys()
        for filename, record in shard[key].items():
            assert record["sha256"] == bytes.fromhex(repodata[key][filename]["sha256"])
            assert record["md5"] == bytes.fromhex(repodata[key][filename]["md5"])
            assert record["depends"] == repodata[key][filename]["depends"]


def test_it_answers_304_to_revalidation(published, client_for):
    channel, _ = published
    anonymous = client_for()
    url = f"/{channel.name}/noarch/repodata.json.zst"
    first = anonymous.get(url)
    assert first["ETag"] and first["Last-Modified"]
    assert first["Cache-Control"] == "public, no-cache"

    by_etag = anonymous.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    by_date = anonymous.get(url, HTTP_IF_MODIFIED_SINCE=first["Last-Modified"])

    assert by_etag.status_code == 304
    assert by_date.status_code == 304
    assert by_etag["ETag"] == first["ETag"]


def test_it_answers_head_like_get_without_a_body(published, client_for):
    channel, paths = published
    anonymous = client_for()
    for name in ("repodata.json.zst", "repodata_shards.msgpack.zst", paths[2].name):
        get = anonymous.get(f"/{channel.name}/noarch/{name}")
        head = anonymous.head(f"/{channel.name}/noarch/{name}")
        assert head.status_code == 200
        assert head["Content-Length"] == str(len(body(get)))
        assert head["ETag"] == get["ETag"]
        assert body(head) == b""


def test_it_serves_package_files_whole_and_by_range(published, client_for):
    channel, paths = published
    anonymous = client_for()
    package = paths[2]
    url = f"/{channel.name}/noarch/{package.name}"
    whole = anonymous.get(url)
    tail = anonymous.get(url, HTTP_RANGE="bytes=-100")
    middle = anonymous.get(url, HTTP_RANGE="bytes=10-19")
    beyond = anonymous.get(url, HTTP_RANGE=f"bytes={package.stat().st_size + 10}-")

    data = package.read_bytes()
    assert body(whole) == data
    assert whole["Accept-Ranges"] == "bytes"
    assert tail.status_code == 206
    assert body(tail) == data[-100:]
    assert tail["Content-Range"] == f"bytes {len(data) - 100}-{len(data) - 1}/{len(data)}"
    assert middle.status_code == 206 and body(middle) == data[10:20]
    assert beyond.status_code == 416


def test_it_answers_404_for_files_that_are_not_there(published, client_for):
    channel, _ = published
    anonymous = client_for()
    for path in (
        "noarch/nothing-1.0-0.conda",
        "noarch/shards/" + "0" * 64 + ".msgpack.zst",
        "not-a-subdir/repodata.json",
        "other.json",
    ):
        assert anonymous.get(f"/{channel.name}/{path}").status_code == 404, path
        head = anonymous.head(f"/{channel.name}/{path}")
        assert head.status_code == 404 and head.content == b"", path


def test_it_marks_private_channel_files_private(client_for, private_channel, packages):
    path = packages.make("secret", "1.0")
    member = client_for("member")
    assert upload(client_for("owner"), private_channel.name, path).status_code == 201
    wait_for_index(private_channel, "noarch")

    repodata = member.get(f"/{private_channel.name}/noarch/repodata.json")
    package = member.get(f"/{private_channel.name}/noarch/{path.name}")

    assert repodata["Cache-Control"].startswith("private")
    assert package["Cache-Control"].startswith("private")
    assert body(package) == path.read_bytes()


def test_it_summarises_the_channel_in_channeldata(published, client_for):
    channel, _ = published
    data = orjson.loads(body(client_for().get(f"/{channel.name}/channeldata.json")))
    assert data["subdirs"] == ["linux-64", "noarch"]
    assert data["packages"]["lib"]["version"] == "2.1"
    assert data["packages"]["app"]["subdirs"] == ["linux-64"]


def test_it_removes_a_deleted_file_from_the_index(published, client_for):
    channel, paths = published
    owner = client_for("owner")
    doomed = paths[0]

    response = owner.delete(f"/api/v1/delete/{channel.name}/linux-64/{doomed.name}")

    assert response.status_code == 204
    wait_for_index(channel, "linux-64")
    repodata = orjson.loads(body(owner.get(f"/{channel.name}/linux-64/repodata.json")))
    assert doomed.name not in repodata["packages.conda"]
    assert paths[1].name in repodata["packages"]
    assert owner.get(f"/{channel.name}/linux-64/{doomed.name}").status_code == 404


def test_it_lists_only_readable_channels_on_the_channels_page(
    client, users, private_channel, public_channel
):
    anonymous = client.get("/channels/").content.decode()
    client.force_login(users["member"])
    member = client.get("/channels/").content.decode()

    assert public_channel.name in anonymous and private_channel.name not in anonymous
    assert private_channel.name in member


def test_it_rebuilds_a_subdir_on_request(published, client_for):
    channel, _ = published
    before = client_for().get(f"/{channel.name}/noarch/repodata.json")

    response = client_for("maintainer").post(f"/api/v1/reindex/{channel.name}/noarch")

    assert response.status_code == 202
    index = wait_for_index(channel, "noarch")
    assert index.built_revision == response.json()["requested_revision"]
    after = client_for().get(f"/{channel.name}/noarch/repodata.json")
    assert after["Last-Modified"] >= before["Last-Modified"]
    assert orjson.loads(body(after))["packages"] == orjson.loads(body(before))["packages"]
    assert client_for("member").post(f"/api/v1/reindex/{channel.name}/noarch").status_code == 403


def test_it_removes_every_stored_file_of_a_deleted_channel(published, client_for, settings):
    channel, _ = published
    folders = [
        settings.STORAGE_DIR / "packages" / str(channel.pk),
        settings.STORAGE_DIR / "index" / str(channel.pk),
    ]
    assert all(any(folder.rglob("*")) for folder in folders)

    response = client_for("owner").delete(f"/api/v1/channels/{channel.name}/")

    assert response.status_code == 204
    assert not any(folder.exists() for folder in folders)


@pytest.fixture
def deleted_midway(published, monkeypatch, settings):
    """The linux-64 index of ``published``, settled, and a way to have a function delete
    the channel (as its owner would) the first time it is called, so that what runs
    around it finds the channel gone in the middle. Yields (index, folder, calls)."""
    from channels_app import lifecycle

    channel, _ = published
    runner.wait_for_background_work()
    index = SubdirIndex.objects.get(channel=channel, label="main", subdir="linux-64")
    calls = []

    def on_first_call(module, name):
        original = getattr(module, name)

        def deleting_first(*args, **kwargs):
            if not calls:
                calls.append(name)
                lifecycle.delete_channel(channel)
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, deleting_first)

    yield index, settings.STORAGE_DIR / "index" / str(channel.pk), on_first_call
    assert calls, "the channel was not deleted midway"


def test_it_leaves_nothing_of_an_index_built_while_its_channel_is_deleted(deleted_midway):
    index, stored, on_first_call = deleted_midway
    SubdirPackage.objects.filter(index=index).update(shard_sha256="")  # shards to write
    on_first_call(repodata, "shard")

    assert publishing.publish(index, index.built_revision) is None

    assert not stored.exists()


def test_it_leaves_nothing_of_a_bz2_compressed_while_its_channel_is_deleted(deleted_midway):
    index, stored, on_first_call = deleted_midway
    files = {k: v for k, v in index.published_files.items() if k != "repodata.json.bz2"}
    SubdirIndex.objects.filter(pk=index.pk).update(published_files=files)
    on_first_call(repodata, "bz2_compress")

    assert bz2_refresh.refresh_bz2(index.channel_id, "linux-64") is None

    assert not stored.exists()


def test_it_answers_the_requests_conda_and_micromamba_send(published, client_for, tokens):
    """Request sequences measured from conda 26.7 and micromamba 2.x (client-protocols.md)."""
    channel, _ = published
    channel.private = True
    channel.save()
    token = tokens["member"]
    anonymous = client_for()
    conda = f"/t/{token}/{channel.name}"

    assert anonymous.get(f"{conda}/notices.json").status_code == 200
    assert anonymous.get(f"{conda}/linux-64/current_repodata.json.zst").status_code == 200
    assert anonymous.get(f"{conda}/linux-64/current_repodata.json").status_code == 200
    assert anonymous.get(f"{conda}/linux-64/repodata.json.zst").status_code == 200

    micromamba = client_for("member")
    for name in ("repodata.json.zst", "repodata_shards.msgpack.zst"):
        head = micromamba.head(f"/{channel.name}/noarch/{name}")
        assert head.status_code == 200, name
    assert anonymous.head(f"/{channel.name}/noarch/repodata.json.zst").status_code == 401
