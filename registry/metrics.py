"""Prometheus metrics: what web processes and Celery workers count, and who may read it.

Labels never carry channel names, paths or tokens: requests are counted by method, route
*name* and status. With several processes per server (gunicorn workers, a Celery worker's
pool) ``prometheus_client`` keeps each process's values in files under
``PROMETHEUS_MULTIPROC_DIR`` and a scrape adds them up; gunicorn.conf.py sets that folder
up for the web server, a Celery worker is given one by its environment and serves its own
scrape on ``WHARF_WORKER_METRICS_PORT`` (web and workers usually run in different
containers, which share no folder). Values read at scrape time — the Celery queue's
length and the index work pending — are computed by the web process that answers.

Who may scrape: with ``WHARF_METRICS_TOKEN`` set, whoever sends it as a bearer token;
without it, only clients on loopback or private addresses that came through no proxy.
"""

import hmac
import ipaddress
import logging
import os
import threading
from http import HTTPStatus
from wsgiref.simple_server import WSGIRequestHandler, make_server

from django.conf import settings
from prometheus_client import REGISTRY, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from registry import broker

log = logging.getLogger(__name__)

# prometheus_client decides this when it is imported, from the same variable.
MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if MULTIPROCESS_DIR:
    os.makedirs(MULTIPROCESS_DIR, exist_ok=True)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The routes of registry/urls.py that receive package uploads; and with PUT, the conda
# file routes (packages_app/conda/urls.py: "channel-file", "label-channel-file", and
# their "token-" forms).
UPLOAD_ROUTES = frozenset({"api:upload-prefix", "upload-quetz"})
PUT_UPLOAD_ROUTE_SUFFIX = "channel-file"

REQUESTS = Counter(
    "wharf_http_requests",
    "HTTP requests answered, by method, route name and status.",
    ["method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "wharf_http_request_duration_seconds",
    "Time until an answer was ready to send (a streamed file's transfer not included).",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
             300),
)  # fmt: skip
UPLOADS = Counter(
    "wharf_uploads",
    "Package uploads answered, by status: 201 stored, 200 already there, anything else refused.",
    ["status"],
)
UPLOAD_BYTES = Counter("wharf_upload_bytes", "Bytes of accepted package uploads.")
UPSTREAM_FAILURES = Counter(
    "wharf_upstream_failures_total",
    "Requests of proxy channels to their upstreams that failed (unreachable, an error "
    "status, an index that could not be read, a file whose bytes did not match).",
)
INDEX_REBUILD_SECONDS = Histogram(
    "wharf_index_rebuild_duration_seconds",
    "Time to build and publish one revision of a channel subdir's index.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)


def count_request(method, route, status, seconds):
    """Count one answered request (``route`` is a route name, never a path)."""
    method = method if method in METHODS else "other"
    status = str(status)
    REQUESTS.labels(method, route, status).inc()
    REQUEST_SECONDS.labels(method, route).observe(seconds)
    if route in UPLOAD_ROUTES or (method == "PUT" and route.endswith(PUT_UPLOAD_ROUTE_SUFFIX)):
        UPLOADS.labels(status).inc()


class _Scraped:
    """What one scrape reads: this server's processes, plus values read now (web only)."""

    def __init__(self, read_now):
        self.read_now = read_now

    def collect(self):
        if MULTIPROCESS_DIR:
            yield from multiprocess.MultiProcessCollector(None, MULTIPROCESS_DIR).collect()
        else:
            yield from REGISTRY.collect()
        if self.read_now:
            yield from _read_now()


def _read_now():
    from django.db.models import F

    from packages_app.models import SubdirIndex

    try:
        behind = SubdirIndex.objects.filter(built_revision__lt=F("requested_revision")).count()
    except Exception as exc:
        log.warning("metrics: index work pending not read: %s", exc)
    else:
        yield GaugeMetricFamily(
            "wharf_index_work_pending",
            "Channel subdirs whose index is behind their package files.",
            value=behind,
        )
    if settings.REDIS_URL:
        try:
            queues = broker.queued_tasks()
        except Exception as exc:
            log.warning("metrics: Celery queue length not read: %s", exc)
            return
        queued = GaugeMetricFamily(
            "wharf_celery_queue_length", "Tasks waiting in the Celery queue.", labels=["queue"]
        )
        for queue, length in queues.items():
            queued.add_metric([queue], length)
        yield queued


def may_scrape(meta):
    """Whether the request (a WSGI environ or ``request.META``) may read the metrics."""
    token = settings.WHARF_METRICS_TOKEN
    if token:
        scheme, _, presented = meta.get("HTTP_AUTHORIZATION", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode(), token.encode()
        )
    # Through a proxy, the peer's address says nothing about the client.
    if "HTTP_X_FORWARDED_FOR" in meta or "HTTP_FORWARDED" in meta:
        return False
    try:
        address = ipaddress.ip_address(meta.get("REMOTE_ADDR", "").strip("[]"))
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_private


def answer(meta, *, read_now=True):
    """``(status, headers, body)`` of a scrape."""
    if may_scrape(meta):
        return 200, [("Content-Type", CONTENT_TYPE_LATEST)], generate_latest(_Scraped(read_now))
    text = [("Content-Type", "text/plain; charset=utf-8")]
    if settings.WHARF_METRICS_TOKEN:
        message = b"Send the metrics token (WHARF_METRICS_TOKEN) as a bearer token.\n"
        return 401, [*text, ("WWW-Authenticate", 'Bearer realm="wharf-metrics"')], message
    message = (
        b"Metrics are served to loopback and private addresses only, not through a proxy;"
        b" set WHARF_METRICS_TOKEN to scrape from elsewhere.\n"
    )
    return 403, text, message


# -- Celery workers --------------------------------------------------------------------------


def clear_multiprocess_dir():
    """Delete the value files of an earlier run (a server starting on its folder)."""
    if not MULTIPROCESS_DIR:
        return
    os.makedirs(MULTIPROCESS_DIR, exist_ok=True)  # e.g. under /tmp of a fresh container
    for entry in os.scandir(MULTIPROCESS_DIR):
        if entry.name.endswith(".db") and entry.is_file(follow_symlinks=False):
            os.unlink(entry.path)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


def _worker_app(environ, start_response):
    if environ.get("PATH_INFO", "/") not in ("/", "/metrics"):
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"Metrics are at /metrics.\n"]
    status, headers, body = answer(environ, read_now=False)
    start_response(f"{status} {HTTPStatus(status).phrase}", headers)
    return [body]


def serve_worker_metrics(port):
    """Serve the metrics of this Celery worker and its pool on ``port`` (all interfaces),
    to the same clients as the web's ``/metrics``; return the server."""
    server = make_server("", port, _worker_app, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="wharf-metrics", daemon=True).start()
    log.info("worker metrics served on port %d", port)
    return server
