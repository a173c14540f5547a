"""API token secrets: generation and digests.

Secrets use only ``[A-Za-z0-9-]`` because micromamba refuses other characters in
``/t/<token>/`` URLs. They carry about 238 bits of randomness, so a plain SHA-256 digest
is a safe way to store and look them up (no per-token salt needed).
"""

import hashlib
import secrets
import string

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
