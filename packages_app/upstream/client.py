"""Requests to an upstream channel, as a proxy channel makes them.

Every connection goes to an address that :func:`channels_app.sources.check_address`
accepted just before (the connection is made to that address, with the host's name for
TLS and the Host header, so a name that resolves differently a moment later cannot lead
elsewhere), and every redirect is checked the same way. The upstream's credentials go
only to the upstream's own origin: a redirect to another host (a CDN) is followed without
them.
"""

import base64
from urllib.parse import urljoin, urlsplit

import urllib3
from django.conf import settings

from channels_app.sources import UnsafeAddress, check_address

MAX_REDIRECTS = 5
USER_AGENT = "wharf-proxy/1"


class UpstreamError(Exception):
    """The upstream could not be asked, or answered with an error."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status  # the upstream's HTTP status, if it answered


def _origin(url):
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


def _credentials(upstream):
    if upstream.token:
        return {"Authorization": f"Bearer {upstream.token}"}
    if upstream.username or upstream.password:
        pair = f"{upstream.username}:{upstream.password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    return {}


def _pool(scheme, host, port, address, timeout):
    if scheme == "https":
        return urllib3.HTTPSConnectionPool(
            address, port or 443, server_hostname=host, assert_hostname=host,
            cert_reqs="CERT_REQUIRED", timeout=timeout, maxsize=1, retries=False,
        )  # fmt: skip
    return urllib3.HTTPConnectionPool(
        address, port or 80, timeout=timeout, maxsize=1, retries=False
    )


def get(upstream, path, headers=None, *, stream=False, timeout=None):
    """GET ``path`` below the upstream channel's URL; the urllib3 response (not read when
    ``stream``: read it with ``.stream()``, then ``.release_conn()``).

    Raises :class:`UpstreamError` when the upstream cannot be reached or redirects to an
    address Wharf does not fetch from; any HTTP status is returned to the caller.
    """
    url = f"{upstream.url}/{path}"
    home = _origin(upstream.url)
    seconds = timeout or settings.WHARF_UPSTREAM_TIMEOUT_SECONDS
    timeout = urllib3.Timeout(connect=min(seconds, 10), read=seconds)
    for _ in range(MAX_REDIRECTS + 1):
        scheme, host, port = _origin(url)
        if scheme not in ("http", "https") or not host:
            raise UpstreamError(f"The upstream redirected to '{url}', not an http(s) URL.")
        try:
            address = check_address(host, port)[0]
        except UnsafeAddress as exc:
            raise UpstreamError(str(exc)) from None
        sent = {"User-Agent": USER_AGENT, "Host": urlsplit(url).netloc, **(headers or {})}
        if (scheme, host, port) == home:
            sent.update(_credentials(upstream))
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            response = _pool(scheme, host, port, address, timeout).urlopen(
                "GET", target or "/", headers=sent, redirect=False, retries=False,
                preload_content=not stream, decode_content=True,
            )  # fmt: skip
        except urllib3.exceptions.HTTPError as exc:
            raise UpstreamError(f"The upstream {host} could not be reached: {exc}") from None
        if response.status in (301, 302, 303, 307, 308) and response.headers.get("Location"):
            url = urljoin(url, response.headers["Location"])
            response.drain_conn()
            response.release_conn()
            continue
        return response
    raise UpstreamError(f"The upstream redirected more than {MAX_REDIRECTS} times.")
