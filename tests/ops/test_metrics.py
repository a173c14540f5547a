"""Prometheus metrics: counted by route name and status (never a channel or a token), added
up across gunicorn workers and a Celery worker's pool, and readable by the right clients."""

import http.client
import time
from urllib.parse import urlsplit

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from packages_app.models import SubdirIndex

from ..packages import eventually, multipart_body, upload, wait_for_index
from ..served import call
from ..served import upload as upload_over_http

METRICS_TOKEN = "metrics-" + "m" * 40


def samples(text):
    """{(sample name, frozenset of labels): value} of a scrape."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scraped, name, **labels):
    return scraped.get((name, frozenset(labels.items())), 0)


def local(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0


# -- who may scrape -------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_are_served_to_loopback_and_private_addresses_only(client):
    assert client.get("/metrics").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="fd00::5").status_code == 200
    refused = client.get("/metrics", REMOTE_ADDR="8.8.4.4")
    assert refused.status_code == 403
    assert b"WHARF_METRICS_TOKEN" in refused.content
    # Through a proxy, the peer is the proxy: the client may be anyone.
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="8.8.4.4").status_code == 403


@pytest.mark.django_db
def test_metrics_need_the_token_once_one_is_set(client, settings):
    settings.WHARF_METRICS_TOKEN = METRICS_TOKEN
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"] == 'Bearer realm="wharf-metrics"'
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer " + "x" * 48)
    assert wrong.status_code == 401
    right = client.get(
        "/metrics", REMOTE_ADDR="8.8.4.4", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}"
    )
    assert right.status_code == 200
    assert b"wharf_http_requests_total" in right.content


# -- what is counted ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_requests_and_uploads_are_counted_by_route_and_status_never_by_channel(
    client, client_for, private_channel, tokens, packages
):
    owner, token = client_for("owner"), tokens["owner"]
    path = packages.make("counted")
    statuses = ("201", "200", "409", "400")
    before = {status: local("wharf_uploads_total", status=status) for status in statuses}
    bytes_before = local("wharf_upload_bytes_total")
    files_before = local(
        "wharf_http_requests_total", method="GET", route="token-channel-file", status="200"
    )

    size = path.stat().st_size
    assert upload(owner, private_channel.name, path).status_code == 201
    assert upload(owner, private_channel.name, path).status_code == 200  # already there
    other = packages.make("counted", summary="other bytes under the same name")
    assert upload(owner, private_channel.name, other).status_code == 409
    assert upload(owner, private_channel.name, path, sha256="0" * 64).status_code == 400
    wait_for_index(private_channel, "noarch")
    url = f"/t/{token}/{private_channel.name}/noarch/repodata.json"
    assert client.get(url).status_code == 200

    scraped = client.get("/metrics").content.decode()
    assert private_channel.name not in scraped
    assert token not in scraped and "/t/" not in scraped
    for status in statuses:
        assert local("wharf_uploads_total", status=status) == before[status] + 1
    assert local("wharf_upload_bytes_total") == bytes_before + size  # the stored file only
    assert (
        local("wharf_http_requests_total", method="GET", route="token-channel-file", status="200")
        == files_before + 1
    )
    counted = samples(scraped)
    assert value(
        counted, "wharf_http_request_duration_seconds_count", method="POST",
        route="api:upload-prefix",
    ) >= 3  # fmt: skip
    assert value(counted, "wharf_index_work_pending") == 0


@pytest.mark.django_db(transaction=True)
def test_uploads_by_put_are_counted_as_uploads(client, private_channel, tokens, packages):
    path = packages.make("put-counted")
    url = f"/t/{tokens['owner']}/{private_channel.name}/label/dev/noarch/{path.name}"
    before = {status: local("wharf_uploads_total", status=status) for status in ("201", "200")}

    assert client.put(url, path.read_bytes(), "application/octet-stream").status_code == 201
    assert client.put(url, path.read_bytes(), "application/octet-stream").status_code == 200
    assert client.get(url).status_code == 200  # a download is no upload

    for status in ("201", "200"):
        assert local("wharf_uploads_total", status=status) == before[status] + 1
    assert (
        local(
            "wharf_http_requests_total",
            method="PUT",
            route="token-label-channel-file",
            status="201",
        )
        >= 1
    )


# -- several processes ------------------------------------------------------------------------


class SlowUpload:
    """An upload whose body arrives in two parts: it holds one sync gunicorn worker."""

    def __init__(self, server, channel, token, path):
        body, content_type = multipart_body(path)
        self.body = body
        address = urlsplit(server)
        self.connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
        self.connection.putrequest("POST", f"/api/v1/upload/{channel}")
        for name, header in (
            ("Authorization", f"Bearer {token}"),
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
        ):
            self.connection.putheader(name, header)
        self.connection.endheaders(body[: len(body) // 2])

    def finish(self):
        self.connection.send(self.body[len(self.body) // 2 :])
        status = self.connection.getresponse().status
        self.connection.close()
        return status


def scrape(url, token=METRICS_TOKEN):
    status, body = call("GET", url, token)
    assert status == 200, body
    return body.decode()


@pytest.mark.django_db(transaction=True)
def test_a_scrape_adds_up_every_process_and_reads_the_queue(
    processes, private_channel, tokens, packages, tmp_path
):
    redis_port = processes.redis().port
    env = {"REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "WHARF_METRICS_TOKEN": METRICS_TOKEN}
    # Sync workers take one request at a time: while one waits for the slow upload's body,
    # the other takes the rest.
    server = processes.gunicorn(env, args=["--worker-class", "sync", "--threads", "1"])
    channel, token = private_channel.name, tokens["owner"]
    paths = [packages.make(f"counted{i}", "1.0") for i in range(4)]
    slow = SlowUpload(server, channel, token, paths[0])
    time.sleep(0.5)
    for path in paths[1:]:
        assert upload_over_http(server, channel, token, path)[0] == 201
    assert slow.finish() == 201

    for _ in range(6):  # whichever worker answers, it counts both
        scraped = scrape(f"{server}/metrics")
        counted = samples(scraped)
        assert value(counted, "wharf_uploads_total", status="201") == 4
        assert value(counted, "wharf_upload_bytes_total") == sum(p.stat().st_size for p in paths)
        # No worker yet: every upload's rebuild waits in the queue.
        assert value(counted, "wharf_celery_queue_length", queue="celery") == 4
        assert value(counted, "wharf_index_work_pending") == 1
        assert channel not in scraped and token not in scraped
    assert call("GET", f"{server}/metrics")[0] == 401

    worker_port = processes.free_port()
    worker_env = {
        **env,
        "WHARF_WORKER_METRICS_PORT": str(worker_port),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "worker-metrics"),
    }
    processes.worker("worker", worker_env, concurrency=2)

    def drained():
        counted = samples(scrape(f"{server}/metrics"))
        assert value(counted, "wharf_celery_queue_length", queue="celery") == 0
        assert value(counted, "wharf_index_work_pending") == 0

    eventually(drained, timeout=60)
    index = wait_for_index(private_channel, "noarch")
    worker_metrics = f"http://127.0.0.1:{worker_port}/metrics"
    rebuilds = value(samples(scrape(worker_metrics)), "wharf_index_rebuild_duration_seconds_count")
    # Every publication but the channel's first (empty, made when it was created, here).
    assert rebuilds == SubdirIndex.objects.get(pk=index.pk).rebuild_count - 1 >= 1
    assert call("GET", worker_metrics)[0] == 401


@pytest.mark.django_db(transaction=True)
def test_a_worker_with_a_metrics_port_needs_a_metrics_folder(processes):
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{processes.redis().port}/0",
        "WHARF_WORKER_METRICS_PORT": str(processes.free_port()),
    }
    with pytest.raises(RuntimeError, match="PROMETHEUS_MULTIPROC_DIR is not"):
        processes.worker("worker", env)
