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
request. What revokes a token (``ApiToken.revoke``: the API, the API keys page, the
admin), and the admin's changes and deletions of tokens and accounts, discard the entries
they make stale (:class:`accounts.tokens.TokenCache`): in this process they take effect
at once, in other processes (or done by a plain UPDATE) within that bound. Every other
route reads the token from the database on every request.

Guessing is limited per client address (:class:`FailureLimit`): a token secret that
matches no token and a failed password sign-in (allauth's form, through
``accounts.adapters.AccountAdapter``, and the admin's :class:`SignInForm`) each count as
a failure; past ``WHARF_AUTH_FAILURE_LIMIT`` failures in a window every request from that
address that carries credentials or changes something is answered 429 until the window
ends.
"""

import base64
import binascii
import ipaddress
import logging
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from rest_framework import authentication, exceptions

from . import audit, tokens
from .models import ApiToken

log = logging.getLogger(__name__)
REALM = 'Bearer realm="wharf"'


class InvalidCredentials(Exception):
    pass


class UnknownToken(InvalidCredentials):
    """A secret that matches no token: what guessing produces, so it counts as a failure."""


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


# Changes made through Wharf in this process discard their entries at once (ApiToken.revoke,
# the admin's saves and deletions); the time bound covers other processes and plain UPDATEs.
token_cache = tokens.cache


def _check(token):
    if token.revoked_at is not None:
        raise InvalidCredentials("This token has been revoked.")
    if not token.is_active:
        raise InvalidCredentials("This token has expired.")
    if not token.user.is_active:
        raise InvalidCredentials("The account of this token is disabled.")


def token_caller(secret, *, cached=False, request=None):
    """The :class:`Caller` a token secret stands for; raise InvalidCredentials.

    The token is found by the SHA-256 digest of the secret through a unique index: no
    comparison of secrets happens here, so timing tells nothing about the stored ones.
    ``request`` gives the client address of the token's first use in the audit log.
    """
    if not tokens.looks_like_secret(secret):
        raise UnknownToken("Invalid token.")
    digest = tokens.digest(secret)
    token = token_cache.get(digest) if cached else None
    from_cache = token is not None
    if token is None:
        token = ApiToken.objects.select_related("user").filter(digest=digest).first()
        if token is None:
            token_cache.discard(digest)
            raise UnknownToken("Invalid token.")
    try:
        _check(token)
    except InvalidCredentials:
        token_cache.discard(digest)
        raise
    if cached and not from_cache:
        token_cache.put(digest, token)
    if token.touch():
        audit.record("token.first_used", actor=token.user, token=token, request=request)
    return Caller(token.user, token)


def identify(request, url_token=None, *, use_session=True, cached=False):
    """Return the :class:`Caller` of a Django request; raise InvalidCredentials.

    ``cached=True`` (conda file routes only) allows a token read from the database in the
    last ``WHARF_TOKEN_CACHE_SECONDS`` by this process; see :class:`TokenCache`.
    """
    secret = presented_secret(request, url_token)
    if secret is not None:
        try:
            caller = token_caller(secret, cached=cached, request=request)
        except UnknownToken:
            failure_limit.failed(request)
            raise
        request.caller = caller  # for the request's log line (registry/operations.py)
        return caller
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


# Limiting failed authentications -----------------------------------------------------


class FailureLimit:
    """Failed authentications per client address, counted in Django's cache.

    Windows of ``WHARF_AUTH_FAILURE_WINDOW_SECONDS`` are aligned to the clock; once an
    address has ``WHARF_AUTH_FAILURE_LIMIT`` failures in the current window it is refused
    until the window ends (0 turns the limit off). IPv6 addresses count by their /64
    network, which one client usually holds whole. With the local-memory cache (no
    REDIS_URL) every process counts on its own, so N processes allow up to N times the
    limit; with Redis all processes share one count.

    Each process remembers for ``MEMO_SECONDS`` that an address is not refused, so that a
    conda client's burst of requests does not pay a cache round trip each (0.2 ms with
    Redis). Failures this process counts take effect at once, those counted by other
    processes within that bound; ``exact`` checks (sign-in forms) always ask the cache.
    """

    KEY = "auth-failures:{address}:{window}"
    MEMO_SECONDS = 1.0
    MEMO_ENTRIES = 10_000

    def __init__(self):
        self.clock = time.time
        self._memo = {}  # cache key -> (not refused until, refused)

    def _key(self, address):
        """(cache key, seconds left in the window, now), or None when nothing is counted."""
        seconds = settings.WHARF_AUTH_FAILURE_WINDOW_SECONDS
        if settings.WHARF_AUTH_FAILURE_LIMIT <= 0 or seconds <= 0 or address is None:
            return None
        if ":" in address:
            address = str(ipaddress.ip_network(f"{address}/64", strict=False).network_address)
        now = self.clock()
        window = int(now // seconds)
        key = self.KEY.format(address=address, window=window)
        return key, (window + 1) * seconds - now, now

    def _remember(self, key, until, refused):
        if len(self._memo) >= self.MEMO_ENTRIES:
            self._memo.clear()
        self._memo[key] = (until, refused)

    def failed(self, request):
        """Count one failed authentication from the request's address."""
        found = self._key(audit.client_address(request))
        if found is None:
            return
        key, left, now = found
        timeout = math.ceil(left) + 1
        count = 1
        try:
            if not cache.add(key, 1, timeout):
                try:
                    count = cache.incr(key)
                except ValueError:  # expired between add and incr
                    cache.set(key, 1, timeout)
        except Exception:  # an unreachable cache must not fail the request
            log.warning("failed authentication from %s not counted: cache unreachable", key)
            return
        if count >= settings.WHARF_AUTH_FAILURE_LIMIT:
            self._remember(key, now + left, True)

    def retry_after(self, request, *, exact=False):
        """Seconds until the request's address may try again, or 0 when it may now."""
        found = self._key(audit.client_address(request))
        if found is None:
            return 0
        key, left, now = found
        until, refused = self._memo.get(key, (0, False))
        if not refused and (exact or until <= now):
            try:
                count = cache.get(key) or 0
            except Exception:
                # The limit fails open: while the cache (Redis) is down, uploads and
                # downloads go on; only the counting of guesses pauses.
                log.warning("failure limit not checked for %s: cache unreachable", key)
                return 0
            refused = count >= settings.WHARF_AUTH_FAILURE_LIMIT
            self._remember(key, now + self.MEMO_SECONDS, refused)
        return max(1, math.ceil(left)) if refused else 0

    def forget(self, address):
        """Drop this window's count of an address (tests; an operator in `manage.py shell`)."""
        found = self._key(address)
        if found is not None:
            cache.delete(found[0])
            self._memo.pop(found[0], None)


failure_limit = FailureLimit()


class SignInForm(AuthenticationForm):
    """Django's sign-in form, as the admin uses it, counting a wrong password (or a
    disabled account) as a failure of the client's address."""

    def clean(self):
        try:
            return super().clean()
        except ValidationError:
            if self.user_cache is None and self.request is not None:
                failure_limit.failed(self.request)
            raise


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def carries_credentials(request):
    """Whether the request authenticates or changes something (what the limit refuses)."""
    meta = request.META
    return (
        request.method not in _SAFE_METHODS
        or "HTTP_AUTHORIZATION" in meta
        or "HTTP_X_API_KEY" in meta
        or request.path_info.startswith("/t/")
        or settings.SESSION_COOKIE_NAME in meta.get("HTTP_COOKIE", "")
    )


class FailureLimitMiddleware:
    """Answer 429 to an address past its failure limit, on every route.

    Anonymous reads (no credentials, a safe method) pass: they cannot guess anything and
    cost no cache read. Place it before ChannelFileMiddleware so conda files are covered.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if carries_credentials(request):
            exact = request.method not in _SAFE_METHODS
            seconds = failure_limit.retry_after(request, exact=exact)
            if seconds:
                response = JsonResponse(
                    {
                        "detail": "Too many failed sign-ins or unknown tokens from your "
                        f"address; try again in {seconds} seconds."
                    },
                    status=429,
                )
                response["Retry-After"] = str(seconds)
                return response
        return self.get_response(request)
