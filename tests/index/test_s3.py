"""Wharf on S3: package and index files in a bucket of a real SeaweedFS server.

gunicorn and, in services mode, a Celery worker (on a Redis of their own, so that the
session's worker, which stores in a directory, never takes their tasks) run with
``S3_BUCKET`` set. Package downloads are redirects to presigned URLs of the bucket, or
streamed through Wharf; the test process looks into the bucket with boto3.
"""

import hashlib
import http.client
import json
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
import rattler_build
from django.conf import settings

from channels_app.models import Channel, Membership, Role
from packages_app import storage
from packages_app.models import PackageFile, SubdirIndex

from ..clients import installed_names, solve_and_install
from ..conftest import Processes
from ..packages import PackageFactory, eventually, sha256_of, wait_for_index
from ..s3 import READER_KEY, READER_SECRET
from ..served import call, delete, filenames, get
from ..served import upload as upload_over_http

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

# Readers here never race a rebuild; a short grace lets a test see retired folders go.
RETIRED_SECONDS = 4


@pytest.fixture(scope="module")
def wharf(s3_server, django_db_setup, tmp_path_factory):
    """Wharf on the bucket: ``url`` redirects package downloads, ``stream_url`` streams
    them; ``env`` starts more processes like them."""
    processes = Processes(tmp_path_factory.mktemp("wharf-on-s3"))
    env = s3_server.env(WHARF_RETIRED_INDEX_SECONDS=str(RETIRED_SECONDS))
    try:
        if settings.REDIS_URL:
            env["REDIS_URL"] = f"redis://127.0.0.1:{processes.redis().port}/0"
            processes.worker("worker-on-s3", env, concurrency=2)
        url = processes.gunicorn(env)
        stream_url = processes.gunicorn({**env, "WHARF_DOWNLOAD_MODE": "stream"})
        yield SimpleNamespace(url=url, stream_url=stream_url, env=env)
    finally:
        processes.stop_all()


def new_channel(base_url, token, name, *, private):
    """A channel created over HTTP, so that its first index is written by Wharf on S3."""
    body = json.dumps({"name": name, "private": private}).encode()
    status, answer = call(
        "POST", f"{base_url}/api/v1/channels/", token, body, {"Content-Type": "application/json"}
    )
    assert status == 201, answer
    return Channel.objects.get(name=name)


def upload(base_url, channel, token, *paths):
    rattler_build.upload_package_to_prefix([str(p) for p in paths], base_url, channel.name,
                                           api_key=token)  # fmt: skip


def request(method, url, token=None, headers=None):
    """``(status, headers, body)`` without following a redirect."""
    parts = urlsplit(url)
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, target, headers=headers)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def local_files(channel):
    """Files of the channel under the storage directory (there must be none)."""
    root = Path(settings.STORAGE_DIR)
    return [
        path
        for folder in (root / "packages" / str(channel.pk), root / "index" / str(channel.pk))
        for path in folder.rglob("*")
        if path.is_file()
    ]


def stored_paths(channel):
    return set(PackageFile.objects.filter(channel=channel).values_list("storage_path", flat=True))


@pytest.fixture
def robots(wharf, users, tokens):
    """A private channel with a member: the owner uploads, the member reads."""
    channel = new_channel(wharf.url, tokens["owner"], "robots", private=True)
    Membership.objects.create(channel=channel, user=users["member"], role=Role.MEMBER)
    return channel


@pytest.fixture
def tool(wharf, robots, tokens, packages):
    """``tool`` in linux-64 of the private channel, indexed."""
    path = packages.make("tool", "1.0", "linux-64")
    upload(wharf.url, robots, tokens["owner"], path)
    wait_for_index(robots, "linux-64")
    return path


def with_bz2(channel, subdir):
    """The subdir's index once its repodata.json.bz2 is published."""

    def bz2_published():
        index = SubdirIndex.objects.get(channel=channel, subdir=subdir)
        assert "repodata.json.bz2" in index.published_files
        return index

    return eventually(bz2_published)


def package_url(base_url, channel, path, subdir="linux-64"):
    return f"{base_url}/{channel.name}/{subdir}/{Path(path).name}"


def test_uploads_land_in_the_bucket_and_clients_install_through_presigned_urls(
    wharf, s3_server, robots, tool, users, tokens, packages, tmp_path, monkeypatch
):
    helper = packages.make("helper", "0.5", "noarch", depends=["base >=2"])
    upload(wharf.url, robots, tokens["owner"], helper)
    commons = new_channel(wharf.url, tokens["owner"], "commons", private=False)
    base = packages.make("base", "2.3", "noarch", extension=".tar.bz2")
    rattler_build.upload_package_to_quetz([str(base)], wharf.url, commons.name,
                                          api_key=tokens["owner"])  # fmt: skip
    wait_for_index(robots, "noarch")
    wait_for_index(commons, "noarch")

    keys = s3_server.keys(f"packages/{robots.pk}")
    assert keys == stored_paths(robots)
    assert {key.rsplit("/", 1)[1] for key in keys} == {tool.name, helper.name}
    for key in keys:
        local = tool if key.endswith(tool.name) else helper
        assert hashlib.sha256(s3_server.read(key)).hexdigest() == sha256_of(local)
    index = SubdirIndex.objects.get(channel=robots, subdir="linux-64")
    published = {entry["path"] for entry in index.published_files.values()}
    assert published <= s3_server.keys(f"index/{robots.pk}/linux-64")
    assert local_files(robots) == [] and local_files(commons) == []

    repodata = json.loads(get(wharf.url, robots.name, tokens["member"], "linux-64/repodata.json"))
    assert filenames(repodata) == {tool.name}

    status, headers, body = request("GET", package_url(wharf.url, robots, tool), tokens["member"])
    assert status == 302, body
    location = urlsplit(headers["Location"])
    assert f"{location.scheme}://{location.netloc}" == s3_server.endpoint_url
    assert location.path.startswith(f"/wharf-test/packages/{robots.pk}/linux-64/")
    assert "X-Amz-Signature=" in location.query
    assert headers["Cache-Control"] == "private, no-store"

    channels = [f"{wharf.url}/{robots.name}", f"{wharf.url}/{commons.name}"]
    auth = {"127.0.0.1": {"BearerToken": tokens["member"]}}
    records, prefix = solve_and_install(channels, auth, tmp_path, monkeypatch)

    assert sorted(r.name.normalized for r in records) == ["base", "helper", "tool"]
    assert installed_names(prefix) == ["base", "helper", "tool"]
    assert (prefix / "README.txt").exists()


def test_index_files_stay_with_wharf_and_are_streamed_from_the_bucket(
    wharf, s3_server, robots, tool, tokens
):
    member = tokens["member"]
    index = with_bz2(robots, "linux-64")
    base = f"{wharf.url}/{robots.name}/linux-64"

    for name, entry in index.published_files.items():
        status, headers, body = request("GET", f"{base}/{name}", member)
        assert status == 200, (name, body[:200])
        assert body == s3_server.read(entry["path"])
        assert headers["ETag"] == f'"{entry["etag"]}"'
        assert headers["Cache-Control"] == "private, no-cache"
        revalidated = request("GET", f"{base}/{name}", member, {"If-None-Match": headers["ETag"]})
        assert revalidated[0] == 304
    (digest,) = index.packages.values_list("shard_sha256", flat=True)
    shard_key = f"index/{robots.pk}/linux-64/shards/{digest}.msgpack.zst"
    status, _, body = request("GET", f"{base}/shards/{digest}.msgpack.zst", member)
    assert status == 200 and body == s3_server.read(shard_key)
    missing = request("GET", f"{base}/shards/{'0' * 64}.msgpack.zst", member)
    assert (missing[0], b"No such shard" in missing[2]) == (404, True)

    # Package files: revalidation and HEAD are answered by Wharf, never redirected.
    etag = f'"{sha256_of(tool)}"'
    status, headers, _ = request("GET", f"{base}/{tool.name}", member, {"If-None-Match": etag})
    assert status == 304 and "Location" not in headers
    status, headers, body = request("HEAD", f"{base}/{tool.name}", member)
    assert status == 200 and "Location" not in headers and body == b""
    assert headers["Content-Length"] == str(tool.stat().st_size)


def test_stream_mode_serves_the_same_bytes_with_ranges(wharf, robots, tool, tokens):
    url = package_url(wharf.stream_url, robots, tool)
    data = tool.read_bytes()
    member = tokens["member"]

    whole = request("GET", url, member)
    middle = request("GET", url, member, {"Range": "bytes=100-199"})
    tail = request("GET", url, member, {"Range": "bytes=-50"})
    beyond = request("GET", url, member, {"Range": f"bytes={len(data) + 10}-"})

    assert whole[0] == 200 and whole[2] == data
    assert whole[1]["Content-Disposition"] == f'attachment; filename="{tool.name}"'
    assert middle[0] == 206 and middle[2] == data[100:200]
    assert middle[1]["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert tail[0] == 206 and tail[2] == data[-50:]
    assert beyond[0] == 416


def _peak_memory_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for {pid}")


def test_streaming_a_large_package_does_not_hold_it_in_memory(
    wharf, robots, tokens, processes, tmp_path
):
    big_factory = PackageFactory(tmp_path / "big")
    (big_factory.files / "blob.bin").write_bytes(hashlib.shake_256(b"x").digest(64 * 1024**2))
    big = big_factory.make("big", "1.0", "linux-64")
    upload(wharf.url, robots, tokens["owner"], big)
    wait_for_index(robots, "linux-64")
    stream_url = processes.gunicorn({**wharf.env, "WHARF_DOWNLOAD_MODE": "stream"})
    master = processes.started[-1].pid

    def forked():  # the master accepts connections before it has forked its two workers
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        assert len(children) == 2
        return children

    workers = eventually(forked, timeout=20)
    for _ in range(4):  # each worker imports what serving needs
        get(stream_url, robots.name, tokens["member"], "linux-64/repodata.json")
    before = {pid: _peak_memory_kib(pid) for pid in workers}

    for _ in range(2):
        status, _, body = request("GET", package_url(stream_url, robots, big), tokens["member"])
        assert status == 200 and hashlib.sha256(body).hexdigest() == sha256_of(big)

    # A worker's first request in a thread also builds that thread's boto3 client (some
    # 20 MiB); reading the object whole would add all of its 64 MiB.
    grown = max(_peak_memory_kib(pid) - before[pid] for pid in workers)
    assert grown < 32 * 1024, f"a worker's peak memory grew by {grown} KiB for a 64 MiB file"


def test_a_private_channel_answers_as_a_missing_one_and_gives_no_url(
    wharf, s3_server, robots, tool, tokens
):
    outsider = tokens["outsider"]
    for token in (None, outsider):
        hidden = request("GET", package_url(wharf.url, robots, tool), token)
        missing = request("GET", f"{wharf.url}/no-such-channel/linux-64/{tool.name}", token)
        assert hidden[0] in (401, 404)
        assert (hidden[0], hidden[2]) == (
            missing[0],
            missing[2].replace(b"no-such-channel", b"robots"),
        )
        assert "Location" not in hidden[1]
        assert str(s3_server.port).encode() not in hidden[2]
    assert request("GET", package_url(wharf.url, robots, tool), tokens["member"])[0] == 302


def test_presigned_urls_are_signed_for_the_public_endpoint_and_expire(
    wharf, s3_server, robots, tool, tokens, processes
):
    public = f"http://localhost:{s3_server.port}"
    url = processes.gunicorn(
        {**wharf.env, "S3_PUBLIC_ENDPOINT_URL": public, "WHARF_PRESIGNED_URL_SECONDS": "2"}
    )
    status, headers, _ = request("GET", package_url(url, robots, tool), tokens["member"])
    assert status == 302
    signed = headers["Location"]
    assert signed.startswith(f"{public}/wharf-test/packages/{robots.pk}/linux-64/")

    status, headers, body = request("GET", signed)
    assert status == 200 and body == tool.read_bytes()
    assert headers["Content-Disposition"] == f'attachment; filename="{tool.name}"'
    # The signature covers the host: the same URL through another name is refused.
    assert request("GET", signed.replace(public, s3_server.endpoint_url))[0] == 403

    time.sleep(3)
    status, _, body = request("GET", signed)
    assert status == 403 and b"expired" in body.lower()


def test_deleting_a_file_deletes_its_object(wharf, s3_server, robots, tool, tokens):
    (key,) = stored_paths(robots)
    assert key in s3_server.keys(f"packages/{robots.pk}")

    status, body = delete(wharf.url, robots.name, tokens["owner"], "linux-64", tool.name)

    assert status in (200, 204), body
    assert s3_server.keys(f"packages/{robots.pk}") == set()
    wait_for_index(robots, "linux-64")
    document = json.loads(get(wharf.url, robots.name, tokens["member"], "linux-64/repodata.json"))
    assert filenames(document) == set()


def test_a_refused_upload_leaves_no_object(wharf, s3_server, robots, tokens, packages, tmp_path):
    forged = tmp_path / "forged-1.0-0.conda"
    forged.write_bytes(b"not a package at all")
    status, body = upload_over_http(wharf.url, robots.name, tokens["owner"], forged)
    assert status == 422, body
    assert s3_server.keys(f"packages/{robots.pk}") == set()
    assert not PackageFile.objects.filter(channel=robots).exists()


def test_an_upload_the_bucket_refuses_is_answered_503_and_nothing_is_kept(
    wharf, s3_server, robots, tokens, packages, processes
):
    url = processes.gunicorn(
        {**wharf.env, "S3_ACCESS_KEY_ID": READER_KEY, "S3_SECRET_ACCESS_KEY": READER_SECRET}
    )
    package = packages.make("tool", "1.0", "linux-64")

    status, body = upload_over_http(url, robots.name, tokens["owner"], package)

    assert status == 503, body
    assert "could not be stored" in json.loads(body)["detail"]
    assert s3_server.keys(f"packages/{robots.pk}") == set()
    assert not PackageFile.objects.filter(channel=robots).exists()
    assert local_files(robots) == []


def test_retired_index_folders_are_collected_from_the_bucket(
    wharf, s3_server, robots, tokens, packages
):
    """A replaced folder stays while its grace lasts (measured from its successor's
    LastModified in the bucket), and goes with the first publication after that."""
    base = f"index/{robots.pk}/linux-64"

    def publish(number):
        upload(wharf.url, robots, tokens["owner"], packages.make(f"p{number}", "1.0", "linux-64"))
        return wait_for_index(robots, "linux-64").published_path.rsplit("/", 1)[1]

    def revision_folders():
        return {key.split("/")[3] for key in s3_server.keys(base) if key.split("/")[3][0] == "r"}

    def first_collected():
        assert first not in revision_folders()

    first = publish(0)
    second = publish(1)
    time.sleep(RETIRED_SECONDS + 1)
    third = publish(2)  # first was replaced long enough ago, second just now
    fourth = publish(3)  # second is neither served nor the one before, but within grace

    eventually(first_collected)
    assert {second, third, fourth} <= revision_folders()


def test_deleting_a_channel_deletes_its_objects(wharf, s3_server, robots, tool, tokens):
    # Settled first: a .bz2 written while the channel goes is deleted just after (that
    # race is in test_channel_files), which this test would see as a leftover.
    for subdir in ("noarch", "linux-64"):
        with_bz2(robots, subdir)
    assert s3_server.keys(f"packages/{robots.pk}") and s3_server.keys(f"index/{robots.pk}")

    status, body = call("DELETE", f"{wharf.url}/api/v1/channels/{robots.name}/", tokens["owner"])

    assert status == 204, body
    assert s3_server.keys(f"packages/{robots.pk}") == set()
    assert s3_server.keys(f"index/{robots.pk}") == set()


def test_embedded_mode_runs_on_s3_with_tasks_in_process(
    wharf, s3_server, users, tokens, packages, processes
):
    url = processes.gunicorn({**wharf.env, "REDIS_URL": "", "WHARF_CACHE_URL": ""})
    channel = new_channel(url, tokens["owner"], "embedded", private=False)
    package = packages.make("solo", "1.0", "noarch")

    upload(url, channel, tokens["owner"], package)

    assert SubdirIndex.objects.get(channel=channel, subdir="noarch").is_current  # in-request
    index = with_bz2(channel, "noarch")
    assert {entry["path"] for entry in index.published_files.values()} <= s3_server.keys(
        f"index/{channel.pk}/noarch"
    )
    document = json.loads(get(url, channel.name, None, "noarch/repodata.json"))
    assert filenames(document) == {package.name}
    status, headers, _ = request("GET", package_url(url, channel, package, "noarch"))
    assert status == 302
    assert request("GET", headers["Location"])[2] == package.read_bytes()
    assert local_files(channel) == []


SAVE_TWICE = """
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
first = default_storage.save("probe/name.txt", ContentFile(b"first"))
second = default_storage.save("probe/name.txt", ContentFile(b"second"))
print(first, second)
"""


def test_saving_under_a_taken_name_keeps_the_object_there(s3_server, processes):
    output = processes.run(["manage.py", "shell", "-c", SAVE_TWICE], s3_server.env())
    first, second = output.splitlines()[-1].split()

    assert first == "probe/name.txt" and second != first
    assert s3_server.read(first) == b"first" and s3_server.read(second) == b"second"


def test_the_s3_settings_refuse_impossible_combinations(s3_server, processes):
    for env, message in [
        ({"S3_BUCKET": "", "WHARF_DOWNLOAD_MODE": "redirect"}, "needs S3_BUCKET"),
        (s3_server.env(WHARF_DOWNLOAD_MODE="sometimes"), "use 'redirect' or 'stream'"),
        (s3_server.env(WHARF_ACCEL_REDIRECT_PREFIX="/_protected/"), "unset one"),
    ]:
        with pytest.raises(subprocess.CalledProcessError) as refused:
            processes.run(["manage.py", "check"], env)
        assert message in refused.value.stderr


def test_redirects_to_the_bucket_count_as_downloads_unless_a_range_starts_later(
    wharf, robots, tool, tokens, processes
):
    from packages_app.conda import statistics
    from packages_app.models import DailyDownloads

    url, member = package_url(wharf.url, robots, tool), tokens["member"]
    assert request("GET", url, member)[0] == 302
    assert request("GET", url, member, {"Range": "bytes=0-99"})[0] == 302
    assert request("GET", url, member, {"Range": "bytes=100-"})[0] == 302
    assert request("HEAD", url, member)[0] == 200
    processes.run(["manage.py", "flush_download_counts"], wharf.env)
    assert statistics.total(DailyDownloads.objects.filter(channel=robots)) == 2


def bucket_at(endpoint_url):
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": "elsewhere", "endpoint_url": endpoint_url,
                    "access_key": "key", "secret_key": "secret", "region_name": "us-east-1"},
    }  # fmt: skip


def test_the_shared_s3_client_follows_the_storage_it_was_made_for(settings):
    settings.STORAGES = {**settings.STORAGES, "default": bucket_at("http://127.0.0.1:9001")}
    first = storage.client()
    assert storage.client() is first  # one per process, shared by its threads
    assert first.meta.endpoint_url == "http://127.0.0.1:9001"

    settings.STORAGES = {**settings.STORAGES, "default": bucket_at("http://127.0.0.1:9002")}

    assert storage.client().meta.endpoint_url == "http://127.0.0.1:9002"
