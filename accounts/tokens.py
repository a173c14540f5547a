"""API token secrets: generation and digests, and this process's cache of valid tokens.

Secrets use only ``[A-Za-z0-9-]`` because micromamba refuses other characters in
``/t/<token>/`` URLs. They carry about 238 bits of randomness, so a plain SHA-256 digest
is a safe way to store and look them up (no per-token salt needed).
"""

import hashlib
import secrets
import string
import time

from django.conf import settings

ALPHABET = string.ascii_letters + string.digits
SECRET_LENGTH = 40


def new_secret():
    body = "".join(secrets.choice(ALPHABET) for _ in range(SECRET_LENGTH))
    return settings.WHARF_TOKEN_PREFIX + body


def digest(secret):
    return hashlib.sha256(secret.encode()).hexdigest()


def looks_like_secret(value):
    return bool(value) and len(value) <= 200 and all(c in ALPHABET or c == "-" for c in value)


class TokenCache:
    """Tokens (with their user) this process found valid, by digest, for a few seconds.

    Only valid tokens are kept, each for ``WHARF_TOKEN_CACHE_SECONDS`` (0 turns the cache
    off) from the moment it was read from the database; they are checked again on every
    use (revocation, expiry, account), so an entry never outlives its bound.

    It lives here rather than with the authentication that reads it so that the code that
    revokes, changes or deletes a token or an account (``ApiToken.revoke``, the admin)
    can discard the entries it makes stale, in this process at once, by calling it.
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
        """Forget one token: it was revoked, changed or deleted."""
        self._entries.pop(digest, None)

    def forget_user(self, user_id):
        """Forget every token of an account that was changed (disabled, say) or deleted."""
        for digest, (_, token) in list(self._entries.items()):
            if token.user_id == user_id:
                self._entries.pop(digest, None)

    def clear(self):
        self._entries.clear()


cache = TokenCache()
