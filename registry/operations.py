"""What operators see of requests: probes, metrics, and one log line per request.

:class:`OperationsMiddleware` comes first in MIDDLEWARE. It answers ``/healthz``,
``/readyz`` and ``/metrics`` itself, ahead of the HTTPS redirect, the ALLOWED_HOSTS check
and the failed-authentication limit: load balancers and Prometheus reach each process by
its own address, over plain HTTP, without credentials. Those answers are neither counted
nor logged. Every other request is counted by route name (:mod:`registry.metrics`) and
logged once answered, on the logger ``wharf.request``.
"""

import logging
import time

from django.conf import settings
from django.http import HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.utils.functional import SimpleLazyObject, empty

from accounts.audit import client_address

from . import health, metrics

log = logging.getLogger("wharf.request")


def healthz(request):
    return JsonResponse({"status": "ok"})


def readyz(request):
    ready, checks = health.readiness()
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    if not ready:
        failed = [name for name, result in checks.items() if result == "failed"]
        body["detail"] = f"Not ready: the {', '.join(failed)} check failed."
    return JsonResponse(body, status=200 if ready else 503)


def scrape(request):
    status, headers, body = metrics.answer(request.META)
    return HttpResponse(body, status=status, headers=dict(headers))


ENDPOINTS = {"/healthz": healthz, "/readyz": readyz, "/metrics": scrape}


class OperationsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        endpoint = ENDPOINTS.get(request.path_info)
        if endpoint is not None:
            return _probe(endpoint, request)
        started = time.perf_counter()
        response = self.get_response(request)
        seconds = time.perf_counter() - started
        route = route_name(request)
        metrics.count_request(request.method, route, response.status_code, seconds)
        if log.isEnabledFor(logging.INFO):
            _log(request, route, response.status_code, seconds)
        return response


def _probe(endpoint, request):
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    response = endpoint(request)
    response["Cache-Control"] = "no-store"
    # Probes come every few seconds: a 503 or 401 here is an answer, not an incident for
    # django.request's log.
    response._has_been_logged = True
    return response  # a HEAD answer loses its body in registry.head


def route_name(request):
    """The name of the route that answered: never the path, which names channels."""
    route = getattr(request, "route_name", None)  # set by the conda file fast path
    if route:
        return route
    if request.resolver_match is not None:
        return request.resolver_match.view_name
    if request.path_info.startswith("/" + settings.STATIC_URL.lstrip("/")):
        return "static"
    return "unmatched"


def _caller(request):
    """(user id, token id) of the caller, if the request looked them up anyway."""
    caller = getattr(request, "caller", None)  # a token caller (accounts.authentication)
    if caller is not None:
        return caller.user.pk, caller.token.pk if caller.token else None
    user = getattr(request, "user", None)
    if isinstance(user, SimpleLazyObject) and user._wrapped is empty:
        return None, None  # the session was never read: reading it now costs a query
    if user is not None and user.is_authenticated:
        return user.pk, None
    return None, None


def _log(request, route, status, seconds):
    path = request.path_info
    if path.startswith("/t/"):
        _, _, rest = path[3:].partition("/")
        path = "/t/***/" + rest
    user_id, token_id = _caller(request)
    client = client_address(request)
    milliseconds = round(seconds * 1000, 2)
    log.info(
        "%s %s %d %.1f ms route=%s user=%s token=%s client=%s",
        request.method, path, status, milliseconds, route, user_id or "-", token_id or "-",
        client or "-",
        extra={
            "method": request.method, "path": path, "route": route, "status": status,
            "duration_ms": milliseconds, "user_id": user_id, "token_id": token_id,
            "client": client,
        },
    )  # fmt: skip
