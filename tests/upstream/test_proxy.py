"""Proxy channels: an upstream channel served through Wharf, its index copied and kept
fresh in the background, its package files fetched once and kept."""

import hashlib
import json
import os

import pytest
from django.utils import timezone

from channels_app.models import Upstream
from packages_app.models import PackageFile, SubdirIndex, UpstreamSubdir
from packages_app.upstream import refresh, serving
from packages_app.upstream.files import Mismatch

from ..packages import eventually, sha256_of, upload
from ..served import unzstd
from .static import Quiet

pytestmark = pytest.mark.django_db(transaction=True)


def body(response):
    return b"".join(response.streaming_content) if response.streaming else response.content


def repodata_of(client, channel, subdir="noarch"):
    response = client.get(f"/{channel}/{subdir}/repodata.json")
    assert response.status_code == 200, body(response)
    return json.loads(body(response))


def test_it_serves_the_upstreams_index_as_its_own(client_for, static_upstream, proxy_of):
    first = static_upstream.add("tool", "1.0")
    static_upstream.add("helper", "2.0")
    static_upstream.index()
    proxy_of(static_upstream.url)
    client = client_for("outsider")

    served = repodata_of(client, "forge")
    assert set(served["packages.conda"]) == {first.name, "helper-2.0-0.conda"}
    assert "base_url" not in served["info"]  # files come from Wharf, not from the upstream
    upstream = json.loads((static_upstream.folder / "noarch" / "repodata.json").read_bytes())
    assert served["packages.conda"][first.name] == upstream["packages.conda"][first.name]
    zst = client.get("/forge/noarch/repodata.json.zst")
    assert json.loads(unzstd(body(zst))) == served
    current = json.loads(body(client.get("/forge/noarch/current_repodata.json")))
    assert set(current["packages.conda"]) == set(served["packages.conda"])
    shard_index = client.get("/forge/noarch/repodata_shards.msgpack.zst")
    assert shard_index.status_code == 200


def test_an_unchanged_index_is_revalidated_with_a_304(client_for, static_upstream, proxy_of):
    static_upstream.add("tool")
    static_upstream.index()
    proxy_of(static_upstream.url)
    client = client_for("outsider")
    first = client.get("/forge/noarch/repodata.json")
    assert first.status_code == 200
    again = client.get("/forge/noarch/repodata.json", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    assert first["Cache-Control"] == "public, no-cache"


def fetches_of(filename):
    return [path for method, path in Quiet.requests if path.endswith(f"/{filename}")]


def test_a_package_file_is_fetched_once_and_then_kept(client_for, static_upstream, proxy_of):
    path = static_upstream.add("tool")
    static_upstream.index()
    channel = proxy_of(static_upstream.url)
    client = client_for("outsider")
    repodata_of(client, "forge")

    response = client.get(f"/forge/noarch/{path.name}")
    assert response.status_code == 200
    assert response["Content-Length"] == str(path.stat().st_size)
    content = body(response)
    assert hashlib.sha256(content).hexdigest() == sha256_of(path)
    stored = PackageFile.objects.get(channel=channel, filename=path.name)
    assert stored.sha256 == sha256_of(path) and stored.state == PackageFile.State.INDEXED
    assert len(fetches_of(path.name)) == 1

    path.unlink()  # the upstream removes it: Wharf keeps serving its copy
    static_upstream.server.down = True  # and then goes away altogether
    again = client.get(f"/forge/noarch/{path.name}")
    assert again.status_code == 200 and body(again) == content
    assert len(fetches_of(path.name)) == 1


def test_a_small_file_that_does_not_match_its_record_is_a_502_and_not_kept(
    client_for, static_upstream, proxy_of
):
    path = static_upstream.add("tool")
    static_upstream.index()
    channel = proxy_of(static_upstream.url)
    client = client_for("outsider")
    repodata_of(client, "forge")
    original = path.read_bytes()
    path.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))  # same size, other bytes

    response = client.get(f"/forge/noarch/{path.name}")
    assert response.status_code == 502
    assert "sha256" in response.json()["detail"] and "nothing was kept" in response.json()["detail"]
    assert not PackageFile.objects.filter(channel=channel, filename=path.name).exists()


def test_a_large_file_that_does_not_match_its_record_is_cut_short_and_not_kept(
    client_for, static_upstream, proxy_of
):
    path = static_upstream.add_large("big", 2 * 1024 * 1024)
    static_upstream.index()
    channel = proxy_of(static_upstream.url)
    client = client_for("outsider")
    repodata_of(client, "forge")
    original = path.read_bytes()
    path.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))

    response = client.get(f"/forge/noarch/{path.name}")
    assert response.status_code == 200  # the headers went out before the last byte came
    received = b""
    with pytest.raises(Mismatch):
        for chunk in response.streaming_content:
            received += chunk
    assert 0 < len(received) < len(original)  # the client never gets the whole file
    assert not PackageFile.objects.filter(channel=channel, filename=path.name).exists()


def test_the_copy_is_served_while_a_refresh_runs_in_the_background(
    client_for, static_upstream, proxy_of
):
    static_upstream.add("tool", "1.0")
    static_upstream.index()
    channel = proxy_of(static_upstream.url, refresh_seconds=10)
    client = client_for("outsider")
    assert set(repodata_of(client, "forge")["packages.conda"]) == {"tool-1.0-0.conda"}
    static_upstream.add("tool", "2.0")
    static_upstream.index()
    # Within refresh_seconds: the copy, without asking the upstream.
    asked = len(Quiet.requests)
    assert set(repodata_of(client, "forge")["packages.conda"]) == {"tool-1.0-0.conda"}
    assert len(Quiet.requests) == asked
    # Older than that: answered from the copy at once, refreshed behind it.
    state = UpstreamSubdir.objects.get(index__channel=channel, index__subdir="noarch")
    UpstreamSubdir.objects.filter(pk=state.pk).update(
        checked_at=timezone.now() - timezone.timedelta(seconds=11)
    )
    serving._fresh_until.clear()  # as this process would know 10 s later
    repodata_of(client, "forge")

    def refreshed():
        names = set(repodata_of(client, "forge")["packages.conda"])
        assert names == {"tool-1.0-0.conda", "tool-2.0-0.conda"}

    eventually(refreshed, timeout=15)
    assert Upstream.objects.get(channel=channel).last_refresh is not None


def test_an_upstream_that_is_down_leaves_the_copy_served_and_says_so(
    client_for, static_upstream, proxy_of
):
    static_upstream.add("tool")
    static_upstream.index()
    channel = proxy_of(static_upstream.url)
    client = client_for("outsider")
    before = repodata_of(client, "forge")
    static_upstream.server.down = True
    index = SubdirIndex.objects.get(channel=channel, subdir="noarch")
    assert refresh.refresh_subdir(channel.pk, "noarch") == "failed"
    assert repodata_of(client, "forge") == before
    upstream = Upstream.objects.get(channel=channel)
    assert "HTTP 503" in upstream.last_error
    shown = client.get("/api/v1/channels/forge/").json()["upstream"]
    assert "HTTP 503" in shown["last_error"]
    assert SubdirIndex.objects.get(pk=index.pk).published_files == index.published_files


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda whole: whole[: len(whole) // 2], "premature EOF"),  # cut in the middle
        (lambda whole: b"[" + whole + b"]", "not a JSON object"),
    ],
    ids=["cut", "array"],
)
def test_an_upstream_document_that_is_not_repodata_fails_the_refresh_and_keeps_the_copy(
    client_for, static_upstream, proxy_of, damage, reason
):
    static_upstream.add("tool", "1.0")
    static_upstream.index()
    channel = proxy_of(static_upstream.url)
    client = client_for("outsider")
    before = repodata_of(client, "forge")
    index = SubdirIndex.objects.get(channel=channel, subdir="noarch")
    static_upstream.add("tool", "2.0")
    static_upstream.index()
    path = static_upstream.folder / "noarch" / "repodata.json"
    whole, modified = path.read_bytes(), path.stat().st_mtime
    path.write_bytes(damage(whole))
    os.utime(path, (modified, modified))  # newer than the copy's, so it is sent

    assert refresh.refresh_subdir(channel.pk, "noarch") == "failed"
    error = Upstream.objects.get(channel=channel).last_error
    assert f"{static_upstream.url}/noarch/repodata.json is not a valid repodata.json" in error
    assert reason in error and "\n" not in error
    assert repodata_of(client, "forge") == before
    served = SubdirIndex.objects.get(pk=index.pk).published_files  # (its .bz2 may follow)
    assert served["repodata.json"] == index.published_files["repodata.json"]

    path.write_bytes(whole)  # whole again: the next refresh reads it
    os.utime(path, (modified + 2, modified + 2))
    assert refresh.refresh_subdir(channel.pk, "noarch") == "new"
    assert set(repodata_of(client, "forge")["packages.conda"]) == {
        "tool-1.0-0.conda",
        "tool-2.0-0.conda",
    }
    assert Upstream.objects.get(channel=channel).last_error == ""


def test_a_connection_dropped_in_the_middle_of_the_document_fails_the_refresh(
    client_for, static_upstream, proxy_of
):
    static_upstream.add("tool", "1.0")
    static_upstream.index()
    channel = proxy_of(static_upstream.url)
    client = client_for("outsider")
    before = repodata_of(client, "forge")
    static_upstream.add("tool", "2.0")
    static_upstream.index()
    static_upstream.server.cut_index = True

    assert refresh.refresh_subdir(channel.pk, "noarch") == "failed"
    error = Upstream.objects.get(channel=channel).last_error
    assert f"{static_upstream.url}/noarch/repodata.json could not be read" in error
    assert repodata_of(client, "forge") == before


def test_a_first_request_the_upstream_cannot_answer_is_a_502_naming_it(
    client_for, static_upstream, proxy_of
):
    static_upstream.server.down = True
    proxy_of(static_upstream.url)
    response = client_for("outsider").get("/forge/linux-64/repodata.json")
    assert response.status_code == 502
    assert static_upstream.url in response.json()["detail"]
    assert "HTTP 503" in response.json()["detail"]


def test_a_subdir_the_upstream_lacks_is_empty(client_for, static_upstream, proxy_of):
    static_upstream.add("tool")
    static_upstream.index()
    proxy_of(static_upstream.url)
    served = repodata_of(client_for("outsider"), "forge", "win-64")
    assert served["packages"] == {} and served["packages.conda"] == {}


def test_a_file_not_in_the_upstreams_index_is_a_404(client_for, static_upstream, proxy_of):
    static_upstream.add("tool")
    static_upstream.index()
    proxy_of(static_upstream.url)
    response = client_for("outsider").get("/forge/noarch/other-1.0-0.conda")
    assert response.status_code == 404
    assert "nor in the index of its upstream" in response.json()["detail"]


def test_uploads_to_a_proxy_channel_are_refused_with_409(
    client_for, static_upstream, proxy_of, packages
):
    static_upstream.index()
    proxy_of(static_upstream.url)
    response = upload(client_for("owner"), "forge", packages.make("mine"))
    assert response.status_code == 409
    assert f"a proxy of {static_upstream.url}" in response.json()["detail"]


def test_the_channel_page_shows_the_upstream_its_last_refresh_and_error(
    client, static_upstream, proxy_of
):
    static_upstream.add("tool")
    static_upstream.index()
    channel = proxy_of(static_upstream.url)
    page = client.get("/forge/").content.decode()
    assert f'Proxy of <a href="{static_upstream.url}"' in page and "last refresh: never" in page
    static_upstream.server.down = True
    refresh.refresh_subdir(channel.pk, "noarch")
    page = client.get("/forge/").content.decode()
    assert "Last error" in page and "HTTP 503" in page


def test_a_fresh_copy_is_revalidated_with_one_query_as_a_hosted_index_is(
    client_for, static_upstream, proxy_of, django_assert_num_queries
):
    static_upstream.add("tool")
    static_upstream.index()
    proxy_of(static_upstream.url)
    client = client_for()  # anonymous: no token to look up
    first = client.get("/forge/noarch/repodata.json.zst")
    assert first.status_code == 200
    asked = len(Quiet.requests)
    with django_assert_num_queries(1):
        again = client.get("/forge/noarch/repodata.json.zst", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    assert len(Quiet.requests) == asked
