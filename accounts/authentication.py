"""Who is calling: one function reads every credential form conda clients send.

- ``/t/<token>/`` in the URL (conda, micromamba ``-t``),
- ``Authorization: Bearer <token>`` (rattler, pixi, micromamba ``--bearer``, rattler-build),
- ``Authorization: Basic`` with the token as password (any user name),
- ``X-API-Key: <token>`` (quetz-style clients),
- otherwise the browser session.

A credential that is presented but unknown, expired or revoked is an error (401), never a
silent fall-back to anonymous.
"""

import base64
import binascii
from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions

from . import tokens
from .models import ApiToken

REALM = 'Bearer realm="wharf"'


class InvalidCredentials(Exception):
    pass


@dataclass
class Caller:
    user: object
    token: ApiToken | None = None

    @property
    def is_anonymous(self):
        return not self.user.is_authenticated


ANONYMOUS = Caller(AnonymousUser())


def presented_secret(request, url_token=None):
    """The token secret the request carries, or None when it carries none."""
    if url_token:
        return url_token
    api_key = request.META.get("HTTP_X_API_KEY")
    if api_key:
        return api_key.strip()
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme in ("bearer", "token"):
        return value
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidCredentials("Malformed Basic credentials.") from exc
        _, _, password = decoded.partition(":")
        return password
    raise InvalidCredentials(f"Unsupported authorization scheme '{scheme}'; use Bearer.")


def token_caller(secret):
    if not tokens.looks_like_secret(secret):
        raise InvalidCredentials("Invalid token.")
    token = ApiToken.objects.select_related("user").filter(digest=tokens.digest(secret)).first()
    if token is None:
        raise InvalidCredentials("Invalid token.")
    if token.revoked_at is not None:
        raise InvalidCredentials("This token has been revoked.")
    if not token.is_active:
        raise InvalidCredentials("This token has expired.")
    if not token.user.is_active:
        raise InvalidCredentials("The account of this token is disabled.")
    token.touch()
    return Caller(token.user, token)


def identify(request, url_token=None, *, use_session=True):
    """Return the :class:`Caller` of a Django request; raise InvalidCredentials."""
    secret = presented_secret(request, url_token)
    if secret is not None:
        return token_caller(secret)
    user = getattr(request, "user", None)
    if use_session and user is not None and user.is_authenticated:
        return Caller(user)
    return ANONYMOUS


class TokenAuthentication(authentication.BaseAuthentication):
    """DRF adapter around :func:`identify` for token credentials."""

    def authenticate(self, request):
        try:
            caller = identify(request._request, use_session=False)
        except InvalidCredentials as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from exc
        if caller.is_anonymous:
            return None
        return caller.user, caller.token

    def authenticate_header(self, request):
        return REALM


def caller_of(drf_request):
    """The :class:`Caller` of a DRF request (after DRF's authentication ran)."""
    token = drf_request.auth if isinstance(drf_request.auth, ApiToken) else None
    return Caller(drf_request.user, token)
