"""Proxy channels when things go wrong: a slow upstream, concurrent refreshes and first
requests, a refresher that died holding the subdir's lease."""

import concurrent.futures
import gc
import hashlib
import http.client
import time
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from packages_app import runner
from packages_app.models import PackageFile, SubdirIndex, UpstreamFetch
from packages_app.upstream import refresh

from ..packages import eventually, sha256_of
from ..served import call
from .static import Quiet, StaticChannel

pytestmark = pytest.mark.django_db(transaction=True)


def repodata_requests():
    return [p for m, p in Quiet.requests if p.endswith("/repodata.json")]


def test_a_slow_upstream_gets_a_504_in_bounded_time_then_the_copy(
    client_for, static_upstream, proxy_of, settings
):
    static_upstream.add("tool")
    static_upstream.index()
    proxy_of(static_upstream.url)
    settings.WHARF_UPSTREAM_FIRST_FETCH_SECONDS = 1
    static_upstream.server.delay = 4  # longer than a client waits for the first answer
    client = client_for("outsider")
    started = time.monotonic()
    response = client.get("/forge/noarch/repodata.json")
    waited = time.monotonic() - started

    assert response.status_code == 504
    assert "did not answer for noarch within 1 s" in response.json()["detail"]
    assert waited < 3
    # The fetch went on; once it is in, clients get the copy without waiting.
    static_upstream.server.delay = 0

    def copied():
        assert client.get("/forge/noarch/repodata.json").status_code == 200

    eventually(copied, timeout=20)


def test_a_refresh_finds_the_subdir_held_by_another_and_leaves_it(static_upstream, proxy_of):
    static_upstream.add("tool")
    static_upstream.index()
    channel = proxy_of(static_upstream.url)
    index, _ = refresh.subdir_state(channel, "noarch")
    later = timezone.now() + timezone.timedelta(seconds=30)
    SubdirIndex.objects.filter(pk=index.pk).update(lease_owner="alive", lease_until=later)

    assert refresh.refresh_subdir(channel.pk, "noarch") == "busy"
    assert repodata_requests() == []  # the upstream was not asked twice at once

    # A holder that died: its lease lapses (it is renewed every few seconds while alive).
    earlier = timezone.now() - timezone.timedelta(seconds=1)
    SubdirIndex.objects.filter(pk=index.pk).update(lease_owner="dead", lease_until=earlier)
    assert refresh.refresh_subdir(channel.pk, "noarch") == "new"
    assert SubdirIndex.objects.get(pk=index.pk).lease_owner == ""


@pytest.mark.live
def test_concurrent_first_requests_fetch_a_file_once(live_server_url, static_upstream, proxy_of):
    path = static_upstream.add("tool")
    static_upstream.index()
    channel = proxy_of(static_upstream.url)
    status, _ = call("GET", f"{live_server_url}/forge/noarch/repodata.json")
    assert status == 200
    static_upstream.server.delay = 0.5  # the first fetch takes a while

    def fetch(_):
        return call("GET", f"{live_server_url}/forge/noarch/{path.name}")

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(fetch, range(6)))

    assert [status for status, _ in answers] == [200] * 6
    assert {hashlib.sha256(content).hexdigest() for _, content in answers} == {sha256_of(path)}
    assert [p for m, p in Quiet.requests if p.endswith(path.name)] == [f"/noarch/{path.name}"]
    assert PackageFile.objects.filter(channel=channel, filename=path.name).count() == 1


@pytest.mark.live
def test_a_mismatching_file_reaches_no_client_through_a_live_server(
    live_server_url, static_upstream, proxy_of
):
    path = static_upstream.add_large("big", 3 * 1024 * 1024)
    static_upstream.index()
    channel = proxy_of(static_upstream.url)
    assert call("GET", f"{live_server_url}/forge/noarch/repodata.json")[0] == 200
    whole = path.read_bytes()
    path.write_bytes(whole[:-10])  # shorter than its record says

    connection = http.client.HTTPConnection(urlsplit(live_server_url).netloc, timeout=30)
    connection.request("GET", f"/forge/noarch/{path.name}")
    answer = connection.getresponse()
    assert answer.status == 200 and int(answer.headers["Content-Length"]) == len(whole)
    with pytest.raises(http.client.IncompleteRead):  # cut short: no client accepts it
        answer.read()
    connection.close()
    assert not PackageFile.objects.filter(channel=channel, filename=path.name).exists()


def test_credentials_go_only_to_the_upstreams_own_host_across_redirects(
    client_for, static_upstream, proxy_of, tmp_path, packages
):
    """The upstream redirects its files to another host (a CDN): followed, without the
    upstream's token."""
    cdn = StaticChannel(tmp_path / "cdn", packages)
    try:
        path = cdn.add("tool")
        cdn.index()
        static_upstream.server.redirect_to = cdn.url
        proxy_of(static_upstream.url, token="upstream-secret")
        Quiet.authorizations.clear()
        client = client_for("outsider")
        assert client.get("/forge/noarch/repodata.json").status_code == 200
        response = client.get(f"/forge/noarch/{path.name}")
        assert response.status_code == 200
        assert hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == sha256_of(path)
        upstream_port = static_upstream.server.server_address[1]
        sent = {(port == upstream_port, auth) for port, auth in Quiet.authorizations}
        assert sent == {(True, "Bearer upstream-secret"), (False, None)}
    finally:
        cdn.stop()


def test_an_answer_dropped_unread_lets_its_fetch_go_and_keeps_nothing(
    client_for, static_upstream, proxy_of
):
    """A relay closed before its end (a client that went away; an answer collected
    unread) keeps nothing and lets its fetch go, so the next request fetches again."""
    path = static_upstream.add_large("big", 2 * 1024 * 1024)
    static_upstream.index()
    channel = proxy_of(static_upstream.url)
    client = client_for("outsider")
    response = client.get(f"/forge/noarch/{path.name}")
    assert response.status_code == 200 and UpstreamFetch.objects.exists()
    del response
    gc.collect()
    runner.wait_for_background_work()
    assert not UpstreamFetch.objects.exists()
    assert not PackageFile.objects.filter(channel=channel).exists()  # never finished
    again = client.get(f"/forge/noarch/{path.name}")
    assert hashlib.sha256(b"".join(again.streaming_content)).hexdigest() == sha256_of(path)


def test_a_proxied_subdir_waiting_for_its_first_copy_is_not_rebuilt_as_a_hosted_one(
    static_upstream, proxy_of
):
    from packages_app.index import reconcile

    channel = proxy_of(static_upstream.url)
    index, _ = refresh.subdir_state(channel, "linux-64")
    assert index.is_current and index.published_files == {}
    assert reconcile.reconcile() == (0, 0)  # nothing for the hosted rebuilds to publish
    index.refresh_from_db()
    assert index.published_files == {}
