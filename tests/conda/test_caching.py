"""What clients may cache: index files revalidated on every command (WHARF_INDEX_MAX_AGE),
channeldata.json's ETag, shards and package files kept, and If-Range on package files."""

import msgpack
import pytest
from django.utils.http import http_date

from ..packages import upload, wait_for_index
from ..published import body, unzstd

pytestmark = pytest.mark.django_db(transaction=True)

SHARDS = "repodata_shards.msgpack.zst"
INDEX_FILES = ("repodata.json", "repodata.json.zst", SHARDS)


@pytest.fixture
def stored(client_for, public_channel, packages):
    """A public channel with one package, indexed."""
    path = packages.make("tool", "1.0")
    assert upload(client_for("owner"), public_channel.name, path).status_code == 201
    return path, wait_for_index(public_channel, "noarch")


@pytest.mark.parametrize("name", INDEX_FILES)
def test_it_has_clients_revalidate_index_files_on_every_use(client_for, stored, name):
    anonymous = client_for()
    url = f"/open-tools/noarch/{name}"

    first = anonymous.get(url)
    again = anonymous.get(url, HTTP_IF_NONE_MATCH=first["ETag"])

    assert first.status_code == 200
    assert first["Cache-Control"] == "public, no-cache"
    assert first["ETag"].startswith('"')  # strong: what no-cache revalidates against
    assert again.status_code == 304
    assert again["Cache-Control"] == "public, no-cache"


def test_it_lets_clients_keep_index_files_as_long_as_configured(
    client_for, stored, private_channel, packages, settings
):
    settings.WHARF_INDEX_MAX_AGE = 30
    path = packages.make("secret", "1.0")
    assert upload(client_for("owner"), private_channel.name, path).status_code == 201
    wait_for_index(private_channel, "noarch")

    public = client_for().get("/open-tools/noarch/repodata.json.zst")
    private = client_for("member").get("/private-team/noarch/repodata.json.zst")

    assert public["Cache-Control"] == "public, max-age=30"
    assert private["Cache-Control"] == "private, max-age=30"


def test_it_lets_clients_keep_shards_and_package_files(client_for, stored):
    path, _ = stored
    anonymous = client_for()
    shard_index = msgpack.unpackb(unzstd(body(anonymous.get(f"/open-tools/noarch/{SHARDS}"))))
    shard = f"shards/{shard_index['shards']['tool'].hex()}.msgpack.zst"

    assert anonymous.get(f"/open-tools/noarch/{shard}")["Cache-Control"] == (
        "public, max-age=31536000, immutable"
    )
    assert anonymous.get(f"/open-tools/noarch/{path.name}")["Cache-Control"] == (
        "public, max-age=600"
    )


def test_it_answers_304_to_channeldata_revalidation(client_for, stored, packages):
    anonymous = client_for()
    url = "/open-tools/channeldata.json"

    first = anonymous.get(url)
    unchanged = anonymous.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    newer = packages.make("tool", "2.0")
    assert upload(client_for("owner"), "open-tools", newer).status_code == 201
    changed = anonymous.get(url, HTTP_IF_NONE_MATCH=first["ETag"])

    assert first.status_code == 200
    assert first["Cache-Control"] == "public, no-cache"
    assert first["ETag"].startswith('"')
    assert unchanged.status_code == 304
    assert unchanged["ETag"] == first["ETag"]
    assert unchanged.content == b""
    assert changed.status_code == 200
    assert changed["ETag"] != first["ETag"]
    assert b'"2.0"' in body(changed)


# If-Range ------------------------------------------------------------------------------


@pytest.fixture
def package_url(stored):
    path, _ = stored
    return f"/open-tools/noarch/{path.name}", path.read_bytes()


@pytest.mark.parametrize("validator", ["ETag", "Last-Modified"])
def test_it_sends_the_range_when_if_range_names_the_file(client_for, package_url, validator):
    url, data = package_url
    anonymous = client_for()
    if_range = anonymous.get(url)[validator]

    response = anonymous.get(url, HTTP_RANGE="bytes=10-19", HTTP_IF_RANGE=if_range)

    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert body(response) == data[10:20]


@pytest.mark.parametrize(
    "validator",
    [
        '"0123456789abcdef"',  # another file's ETag
        "weak",  # the file's own ETag, marked weak: never a match for If-Range
        "earlier",  # a date that is not the file's
        "not a date",
    ],
)
def test_it_sends_the_whole_file_when_if_range_names_another(client_for, package_url, validator):
    url, data = package_url
    anonymous = client_for()
    first = anonymous.get(url)
    if_range = {
        "weak": f"W/{first['ETag']}",
        "earlier": http_date(946684800),
    }.get(validator, validator)

    response = anonymous.get(url, HTTP_RANGE="bytes=10-19", HTTP_IF_RANGE=if_range)

    assert response.status_code == 200
    assert not response.has_header("Content-Range")
    assert body(response) == data
