"""The answer to an unhandled error: 503 when a service Wharf needs is unreachable.

Django calls the 500 handler while the exception is being handled, so it can tell a
database, Redis or object storage outage (the client should retry: 503 with Retry-After)
from a bug (500). Clients such as rattler-build retry 503s; nothing was stored in either
case.
"""

import sys

from botocore.exceptions import ConnectionError as ObjectStoreConnectionError
from botocore.exceptions import HTTPClientError as ObjectStoreHTTPError
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.template import loader

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


def server_error(request):
    exc = sys.exc_info()[1]
    wants_json = not request.accepts("text/html") or request.path.startswith("/api/")
    if exc is not None and is_outage(exc):
        message = "Wharf cannot reach its database, queue or storage right now; try again shortly."
        if wants_json:
            response = JsonResponse({"detail": message}, status=503)
        else:
            html = loader.get_template("503.html").render({"message": message})
            response = HttpResponse(html, status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    if wants_json:
        return JsonResponse({"detail": "Internal server error."}, status=500)
    return HttpResponse(loader.get_template("500.html").render(), status=500)
