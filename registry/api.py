"""REST wiring shared by the apps: errors from the access policy become HTTP answers."""

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from accounts.authentication import REALM, InvalidCredentials
from channels_app.access import AccessError


def exception_handler(exc, context):
    if isinstance(exc, AccessError):
        response = Response({"detail": exc.message}, status=exc.status)
    elif isinstance(exc, InvalidCredentials):
        response = Response({"detail": str(exc)}, status=401)
    else:
        return drf_exception_handler(exc, context)
    if response.status_code == 401:
        response["WWW-Authenticate"] = REALM
    return response
