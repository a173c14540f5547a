"""HEAD over a real server: every route answers with GET's headers and sends no body.

Django's test client drops HEAD bodies by itself, so these requests go to gunicorn and
the bytes on the socket are read as they come. gunicorn drops a body the application hands
it for HEAD, with a warning in its log; other servers send it, so neither may happen.
"""

import socket
from urllib.parse import urlsplit

import pytest

from ..packages import upload, wait_for_index

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def raw(base_url, method, path, token=None):
    """``(status, headers, bytes after the headers)`` of one request on its own connection."""
    address = urlsplit(base_url)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {address.netloc}", "Connection: close"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, rest


@pytest.fixture
def served(processes, client_for, public_channel, packages):
    path = packages.make("tool", "1.0")
    assert upload(client_for("owner"), public_channel.name, path).status_code == 201
    wait_for_index(public_channel, "noarch")
    return processes.gunicorn(), public_channel.name, path, processes.folder / "gunicorn.log"


def handed_a_body(log):
    return "body bytes on a no-body response" in log.read_text()


@pytest.mark.parametrize(
    "path",
    [
        "/",  # an HTML page
        "/{channel}/",  # a channel's page
        "/api/v1/search?q=tool",  # REST
        "/api/v1/channels/no-such-channel/",  # a REST error
        "/no-such-page/here",  # Django's 404 page
        "/{channel}/channeldata.json",  # a conda route built in Python
        "/{channel}/noarch/repodata.json",  # an index file
        "/{channel}/noarch/missing-1.0-0.conda",  # a conda route's 404
        "/healthz",  # a probe
    ],
)
def test_it_answers_head_with_gets_headers_and_no_body(served, tokens, path):
    base_url, channel, _, log = served
    path = path.format(channel=channel)

    get_status, get_headers, get_body = raw(base_url, "GET", path, tokens["owner"])
    status, headers, sent = raw(base_url, "HEAD", path, tokens["owner"])

    assert get_body  # GET does send one
    assert sent == b""
    assert not handed_a_body(log)
    assert status == get_status
    assert headers.get("content-type") == get_headers.get("content-type")
    if "content-length" in get_headers:
        assert headers["content-length"] == get_headers["content-length"]


def test_it_answers_head_of_a_package_file_without_its_bytes(served, tokens):
    base_url, channel, path, log = served

    status, headers, sent = raw(base_url, "HEAD", f"/{channel}/noarch/{path.name}")

    assert status == 200
    assert headers["content-length"] == str(path.stat().st_size)
    assert sent == b""
    assert not handed_a_body(log)
