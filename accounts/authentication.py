"""Who is calling: one function reads every credential form conda clients send.

- ``/t/<token>/`` in the URL (conda, micromamba ``-t``),
- ``Authorization: Bearer <token>`` (rattler, pixi, micromamba ``--bearer``, rattler-build),
- ``Authorization: Basic`` with the token as password (any user name),
- ``X-API-Key: <token>`` (quetz-style clients),
- otherwise the browser session.

A credential that is presented but unknown, expired or revoked is an error (401), never a
silent fall-back to anonymous.

Conda file requests (``identify(..., cached=True)``) may use a token looked up in the last
``WHARF_TOKEN_CACHE_SECONDS`` by the same process. Expiry is still checked on every
request; a revocation, a disabled account or a change to the token's channels made in this
process clears the cache at once, and one made by another process takes effect within
that bound. Every other route reads the token from the database on every request.
"""

import base64
import binascii
import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db.models.signals import m2m_changed, post_delete, post_save
from rest_framework import authentication, exceptions

from . import tokens
from .models import ApiToken, User

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


class TokenCache:
    """Tokens (with their user) this process found valid, by digest, for a few seconds.

    Only valid tokens are kept, each for ``WHARF_TOKEN_CACHE_SECONDS`` (0 turns the cache
    off) from the moment it was read from the database; they are checked again on every
    use (revocation, expiry, account), so an entry never outlives its bound.
    """

    MAX_ENTRIES = 10_000

    def __init__(self):
        self._entries = {}
        self.clock = time.monotonic

    def get(self, digest):
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            self._entries.pop(digest, None)
            return None
        return entry[1]

    def put(self, digest, token):
        seconds = settings.WHARF_TOKEN_CACHE_SECONDS
        if seconds <= 0:
            return
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[digest] = (self.clock() + seconds, token)

    def discard(self, digest):
        self._entries.pop(digest, None)

    def clear(self, **_signal_arguments):
        self._entries.clear()


token_cache = TokenCache()
# Changes made in this process take effect at once; the time bound covers the others.
for _model in (ApiToken, User):
    post_save.connect(token_cache.clear, sender=_model, dispatch_uid=f"token-cache-{_model}")
    post_delete.connect(token_cache.clear, sender=_model, dispatch_uid=f"token-cache-d{_model}")
m2m_changed.connect(token_cache.clear, sender=ApiToken.channels.through, dispatch_uid="token-m2m")


def _check(token):
    if token.revoked_at is not None:
        raise InvalidCredentials("This token has been revoked.")
    if not token.is_active:
        raise InvalidCredentials("This token has expired.")
    if not token.user.is_active:
        raise InvalidCredentials("The account of this token is disabled.")


def token_caller(secret, *, cached=False):
    if not tokens.looks_like_secret(secret):
        raise InvalidCredentials("Invalid token.")
    digest = tokens.digest(secret)
    token = token_cache.get(digest) if cached else None
    from_cache = token is not None
    if token is None:
        token = ApiToken.objects.select_related("user").filter(digest=digest).first()
        if token is None:
            token_cache.discard(digest)
            raise InvalidCredentials("Invalid token.")
    try:
        _check(token)
    except InvalidCredentials:
        token_cache.discard(digest)
        raise
    if cached and not from_cache:
        token_cache.put(digest, token)
    token.touch()
    return Caller(token.user, token)


def identify(request, url_token=None, *, use_session=True, cached=False):
    """Return the :class:`Caller` of a Django request; raise InvalidCredentials.

    ``cached=True`` (conda file routes only) allows a token read from the database in the
    last ``WHARF_TOKEN_CACHE_SECONDS`` by this process; see :class:`TokenCache`.
    """
    secret = presented_secret(request, url_token)
    if secret is not None:
        return token_caller(secret, cached=cached)
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
