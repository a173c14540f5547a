"""Django's error answers: JSON for REST clients, HTML pages for people.

DRF answers errors inside its views as JSON itself, but some are answered by Django:
a body past DATA_UPLOAD_MAX_MEMORY_SIZE or with too many fields (refused while it is
read, outside DRF's handling), a path under /api/ that no route matches, a CSRF failure.
Under /api/, and for clients that do not take HTML, those answers are ``{"detail": ...}``
too; web pages keep their HTML pages.

Django calls the 500 handler while the exception is being handled, so it can tell a
database, Redis or object storage outage (the client should retry: 503 with Retry-After)
from a bug (500). Clients such as rattler-build retry 503s; nothing was stored in either
case.
"""

import sys

from botocore.exceptions import ConnectionError as ObjectStoreConnectionError
from botocore.exceptions import HTTPClientError as ObjectStoreHTTPError
from django.conf import settings
from django.core.exceptions import (
    DisallowedHost,
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.template import loader
from django.views import csrf, defaults

try:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError:  # pragma: no cover - redis comes with celery[redis]
    RedisConnectionError = RedisTimeoutError = ()

OUTAGES = (
    OperationalError,
    InterfaceError,
    RedisConnectionError,
    RedisTimeoutError,
    ObjectStoreConnectionError,
    ObjectStoreHTTPError,
)
RETRY_AFTER_SECONDS = 5


def is_outage(exc):
    if isinstance(exc, OUTAGES):
        return True
    # Deadlocks and serialization failures are DatabaseErrors worth retrying too.
    return isinstance(exc, DatabaseError) and "deadlock" in str(exc).lower()


def wants_json(request):
    """REST paths answer JSON, and so does every client that does not take HTML."""
    return request.path_info.startswith("/api/") or not request.accepts("text/html")


def bad_request(request, exception):
    if not wants_json(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        message = (
            f"The request body is larger than the limit of {limit} bytes "
            "(DATA_UPLOAD_MAX_MEMORY_SIZE); packages go to the upload routes, which have "
            "their own limit."
        )
        return JsonResponse({"detail": message}, status=413)
    if isinstance(exception, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        message = f"The request has more than {limit} fields (DATA_UPLOAD_MAX_NUMBER_FIELDS)."
    elif isinstance(exception, TooManyFilesSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
        message = f"The request has more than {limit} files (DATA_UPLOAD_MAX_NUMBER_FILES)."
    elif isinstance(exception, DisallowedHost):
        message = "The Host header names a host this server does not answer for."
    else:
        # Other exceptions' texts are for the operator's log, not for the client.
        message = "Bad request."
    return JsonResponse({"detail": message}, status=400)


def permission_denied(request, exception):
    if not wants_json(request):
        return defaults.permission_denied(request, exception)
    # PermissionDenied carries a message for the caller (channels_app.access).
    return JsonResponse({"detail": str(exception) or "Permission denied."}, status=403)


def page_not_found(request, exception):
    if not wants_json(request):
        return defaults.page_not_found(request, exception)
    return JsonResponse({"detail": f"Nothing at {request.path}."}, status=404)


def csrf_failure(request, reason=""):
    if not wants_json(request):
        return csrf.csrf_failure(request, reason)
    message = f"CSRF verification failed: {reason} Send the CSRF token, or use an API token."
    return JsonResponse({"detail": message}, status=403)


def server_error(request):
    exc = sys.exc_info()[1]
    if exc is not None and is_outage(exc):
        message = "Wharf cannot reach its database, queue or storage right now; try again shortly."
        if wants_json(request):
            response = JsonResponse({"detail": message}, status=503)
        else:
            html = loader.get_template("503.html").render({"message": message})
            response = HttpResponse(html, status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    if wants_json(request):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    return HttpResponse(loader.get_template("500.html").render(), status=500)
