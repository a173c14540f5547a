"""A channel over HTTP, as conda clients and uploaders see it, for tests against live
processes: uploads and deletes that report their status instead of raising, reads of the
published index that check it is whole and agrees with itself, and a look at storage for
package files that no row refers to."""

import hashlib
import io
import urllib.error
import urllib.request
from pathlib import Path

import msgpack
import orjson
import zstandard
from django.core.files.storage import default_storage

from packages_app.models import PackageFile

from .packages import multipart_body


def fetch(method, url, token=None, data=None, headers=None, timeout=60):
    """``(status, headers, body)``; a refused connection is status 0."""
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()
    except (urllib.error.URLError, ConnectionError):
        return 0, {}, b""


def call(method, url, token=None, data=None, headers=None, timeout=60):
    """``(status, body)``; a refused connection is status 0."""
    status, _, body = fetch(method, url, token, data, headers, timeout)
    return status, body


def upload(base_url, channel, token, path):
    data, content_type = multipart_body(path)
    url = f"{base_url}/api/v1/upload/{channel}"
    return call("POST", url, token, data, {"Content-Type": content_type})


def delete(base_url, channel, token, subdir, filename):
    return call("DELETE", f"{base_url}/api/v1/delete/{channel}/{subdir}/{filename}", token)


def get(base_url, channel, token, path):
    """The body of a channel file; anything but 200 fails the test."""
    status, body = call("GET", f"{base_url}/{channel}/{path}", token)
    assert status == 200, f"GET {channel}/{path}: {status} {body[:200]!r}"
    return body


def unzstd(data):
    # Read as a stream: repodata.json.zst is written without its size in the frame header.
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()


def filenames(document):
    return set(document["packages"]) | set(document["packages.conda"])


def shard(base_url, channel, token, subdir, name, digest):
    """The shard of package ``name``, checked against the hash it is named by."""
    data = get(base_url, channel, token, f"{subdir}/shards/{digest.hex()}.msgpack.zst")
    assert hashlib.sha256(data).digest() == digest, f"the shard of {name} is not what it is named"
    document = msgpack.unpackb(unzstd(data))
    records = [*document["packages"].values(), *document["packages.conda"].values()]
    assert records and {record["name"] for record in records} == {name}
    return document


def shard_filenames(base_url, channel, token, subdir, shard_index_body):
    """The file names in all the shards a shard index names."""
    shard_index = msgpack.unpackb(unzstd(shard_index_body))
    assert shard_index["info"]["subdir"] == subdir
    names = set()
    for name, digest in shard_index["shards"].items():
        names |= filenames(shard(base_url, channel, token, subdir, name, digest))
    return names


def served_filenames(base_url, channel, token, subdir):
    """The file names the channel publishes for ``subdir``, after checking that
    repodata.json, repodata.json.zst and the shards all list the same ones.

    Call when no rebuild runs: the three are read one after the other.
    """
    raw = get(base_url, channel, token, f"{subdir}/repodata.json")
    document = orjson.loads(raw)
    assert document["info"]["subdir"] == subdir
    assert unzstd(get(base_url, channel, token, f"{subdir}/repodata.json.zst")) == raw
    shard_index = get(base_url, channel, token, f"{subdir}/repodata_shards.msgpack.zst")
    assert shard_filenames(base_url, channel, token, subdir, shard_index) == filenames(document)
    return filenames(document)


def files_below(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file())


def orphan_package_files(channel):
    """Package files in storage that no PackageFile row refers to."""
    base = f"packages/{channel.pk}"
    stored = {f"{base}/{path}" for path in files_below(default_storage.path(base))}
    rows = PackageFile.objects.filter(channel=channel)
    return stored - set(rows.values_list("storage_path", flat=True))
