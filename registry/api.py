"""REST wiring shared by the apps: domain errors become HTTP answers, here and only here."""

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from accounts.authentication import REALM, InvalidCredentials
from accounts.errors import DomainError


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        response = Response(exc.body(), status=exc.status)
    elif isinstance(exc, InvalidCredentials):
        response = Response({"detail": str(exc)}, status=401)
    else:
        return drf_exception_handler(exc, context)
    if response.status_code == 401:
        response["WWW-Authenticate"] = REALM
    return response
