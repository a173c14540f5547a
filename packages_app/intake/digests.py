"""The digests a client declares for the package it sends, and their check.

A client may declare digests in several places at once: request headers
(``X-File-SHA256``; Artifactory's ``X-Checksum-Sha256``, ``X-Checksum-Sha1`` and
``X-Checksum-Md5``), the headers of the multipart part (``x-file-sha256``) and a query
parameter (quetz's ``?sha256=``). Every one given is checked against the bytes received;
one that does not match refuses the upload (400, naming where it was declared) before
anything is stored.
"""

import hashlib
from dataclasses import dataclass

from accounts.errors import DomainError

# Request headers that declare a digest of the package, and the digest each declares.
REQUEST_HEADERS = (
    ("X-File-SHA256", "sha256"),
    ("X-Checksum-Sha256", "sha256"),
    ("X-Checksum-Sha1", "sha1"),
    ("X-Checksum-Md5", "md5"),
)


@dataclass(frozen=True)
class Declared:
    """One digest a client declared, and where (named in the refusal)."""

    algorithm: str
    value: str
    where: str


class DigestMismatch(DomainError):
    """A declared digest that the received bytes do not have (400)."""


def in_request_headers(meta):
    """The digests declared by the request headers of :data:`REQUEST_HEADERS`."""
    declared = []
    for header, algorithm in REQUEST_HEADERS:
        value = meta.get("HTTP_" + header.upper().replace("-", "_"), "").strip()
        if value:
            declared.append(Declared(algorithm, value, f"the request header {header}"))
    return declared


def given(algorithm, value, where):
    """``[Declared]`` for a value that may be absent (an empty list then)."""
    value = (value or "").strip()
    return [Declared(algorithm, value, where)] if value else []


class Hashes:
    """The digests of the bytes fed to it: sha256 and md5 always (repodata carries both),
    sha1 only when one was declared."""

    def __init__(self, declared=()):
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5()  # noqa: S324 - conda's repodata carries md5
        wanted = any(digest.algorithm == "sha1" for digest in declared)
        self.sha1 = hashlib.sha1() if wanted else None  # noqa: S324 - a client's checksum

    def update(self, chunk):
        self.sha256.update(chunk)
        self.md5.update(chunk)
        if self.sha1 is not None:
            self.sha1.update(chunk)

    def hexdigest(self, algorithm):
        return getattr(self, algorithm).hexdigest()


def check(declared, hashes):
    """Raise :class:`DigestMismatch` naming every declared digest the bytes do not have."""
    wrong = [
        f"{digest.algorithm} mismatch: {digest.where} declares {digest.value} but the "
        f"received bytes hash to {hashes.hexdigest(digest.algorithm)}"
        for digest in declared
        if digest.value.lower() != hashes.hexdigest(digest.algorithm)
    ]
    if wrong:
        raise DigestMismatch(
            "; ".join(wrong) + ". The upload was damaged or incomplete, or the digest is "
            "another file's; nothing was stored."
        )
