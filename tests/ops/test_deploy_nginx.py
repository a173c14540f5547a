"""The nginx that docker-compose.yml puts in front of Wharf (profile "nginx"), with package
files on the shared volume as docker/compose.local-storage.yml configures: Wharf authorizes
each conda file request and answers with X-Accel-Redirect, nginx sends the bytes.

docker/nginx.conf runs here in Debian's nginx as it is, but for the addresses: the
compose service name of the web process, the port and the volume's path are the test's.
"""

import getpass
import gzip
import shutil
import subprocess

import pytest
import rattler_build
from django.conf import settings

from ..clients import installed_names, solve_and_install
from ..conftest import _accepts_connections
from ..deployment import ROOT, compose_services
from ..packages import sha256_of, wait_for_index
from ..served import fetch, upload

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

MAIN = """
user {user};
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/wharf.conf;
}}
"""


@pytest.fixture
def behind_nginx(processes, tmp_path):
    """(nginx URL, Wharf URL): Wharf with the local-storage override's settings."""
    environment = compose_services("docker/compose.local-storage.yml")["web"]["environment"]
    env = {k: environment[k] for k in ("S3_BUCKET", "WHARF_ACCEL_REDIRECT_PREFIX")}
    wharf = processes.gunicorn(env)
    port = processes.free_port()
    conf = (ROOT / "docker" / "nginx.conf").read_text()
    for shipped, here in (
        ("server web:8000;", f"server {wharf.removeprefix('http://')};"),
        ("listen 80;", f"listen 127.0.0.1:{port};"),
        ("alias /data/storage/;", f"alias {settings.STORAGE_DIR}/;"),
    ):
        assert shipped in conf
        conf = conf.replace(shipped, here)
    folder = tmp_path / "nginx"
    folder.mkdir()
    (folder / "wharf.conf").write_text(conf)
    (folder / "nginx.conf").write_text(MAIN.format(user=getpass.getuser(), tmp=folder))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    subprocess.run([nginx, "-t", "-c", folder / "nginx.conf", "-p", folder], check=True,
                   capture_output=True)  # fmt: skip
    processes.start(
        "nginx", [nginx, "-c", str(folder / "nginx.conf"), "-p", str(folder)], python=False,
        ready=lambda: _accepts_connections(port),
    )  # fmt: skip
    return f"http://127.0.0.1:{port}", wharf


def test_clients_upload_and_install_through_nginx_which_sends_the_files(
    behind_nginx, private_channel, tokens, packages, tmp_path, monkeypatch
):
    proxy, wharf = behind_nginx
    token = tokens["owner"]
    tool = packages.make("tool", "1.0", "linux-64", depends=["base"])
    base = packages.make("base", "1.0", "noarch")
    rattler_build.upload_package_to_prefix([str(tool)], proxy, private_channel.name, api_key=token)
    # An upload by PUT (Artifactory style), its chunked body streamed through nginx.
    rattler_build.upload_package_to_artifactory(
        [str(base)], proxy, private_channel.name, token=token
    )
    wait_for_index(private_channel, "linux-64")
    wait_for_index(private_channel, "noarch")

    auth = {"127.0.0.1": {"BearerToken": token}}  # rattler: by host name, without the port
    channels = [f"{proxy}/{private_channel.name}"]
    _, prefix = solve_and_install(channels, auth, tmp_path, monkeypatch, ["tool"])
    url = f"{private_channel.name}/linux-64/{tool.name}"
    whole = fetch("GET", f"{proxy}/{url}", token)
    part = fetch("GET", f"{proxy}/{url}", token, headers={"Range": "bytes=10-19"})
    direct = fetch("GET", f"{wharf}/{url}", token)
    anonymous = fetch("GET", f"{proxy}/{url}")
    internal = fetch("GET", f"{proxy}/_protected/{url}", token)

    assert installed_names(prefix) == ["base", "tool"]
    assert whole[0] == 200
    assert whole[2] == tool.read_bytes()
    assert whole[1]["ETag"] == f'"{sha256_of(tool)}"'
    assert (part[0], part[2]) == (206, tool.read_bytes()[10:20])
    # Wharf itself only authorized: nginx filled the body from the volume.
    assert direct[0] == 200
    assert direct[2] == b""
    assert direct[1]["X-Accel-Redirect"].startswith("/_protected/packages/")
    assert anonymous[0] == 401
    assert anonymous[2] != tool.read_bytes()
    assert internal[0] == 404


@pytest.fixture
def uploaded(behind_nginx, private_channel, tokens, packages):
    """(nginx URL, token, package file) of a package uploaded through nginx, indexed."""
    proxy, _ = behind_nginx
    tool = packages.make("tool", "1.0", "linux-64")
    assert upload(proxy, private_channel.name, tokens["owner"], tool)[0] == 201
    wait_for_index(private_channel, "linux-64")
    return proxy, tokens["owner"], tool


def test_index_files_through_nginx_keep_their_freshness_and_are_gzipped_on_request(
    uploaded, private_channel
):
    proxy, token, tool = uploaded
    url = f"{proxy}/{private_channel.name}/linux-64/repodata.json"
    gzip_please = {"Accept-Encoding": "gzip"}

    plain = fetch("GET", url, token)
    packed = fetch("GET", url, token, headers=gzip_please)
    zst = fetch("GET", f"{url}.zst", token, headers=gzip_please)
    by_weak_tag = fetch(
        "GET", url, token, headers={**gzip_please, "If-None-Match": packed[1]["ETag"]}
    )
    by_strong_tag = fetch("GET", url, token, headers={"If-None-Match": plain[1]["ETag"]})

    assert plain[0] == 200
    assert plain[1]["Cache-Control"] == "private, no-cache"
    assert "Content-Encoding" not in plain[1]
    assert tool.name.encode() in plain[2]
    assert packed[0] == 200
    assert packed[1]["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed[1]["Vary"]
    assert gzip.decompress(packed[2]) == plain[2]
    assert packed[1]["Cache-Control"] == "private, no-cache"
    assert packed[1]["ETag"] == f"W/{plain[1]['ETag']}"  # nginx's mark of changed bytes
    assert "Content-Encoding" not in zst[1]  # zstd already
    assert zst[1]["Cache-Control"] == "private, no-cache"
    assert by_weak_tag[0] == 304
    assert by_strong_tag[0] == 304


def test_nginx_sends_a_range_only_when_if_range_names_the_file(uploaded, private_channel):
    proxy, token, tool = uploaded
    url = f"{proxy}/{private_channel.name}/linux-64/{tool.name}"
    first = fetch("GET", url, token)
    ranged = {"Range": "bytes=10-19"}

    same = fetch("GET", url, token, headers={**ranged, "If-Range": first[1]["ETag"]})
    same_date = fetch("GET", url, token, headers={**ranged, "If-Range": first[1]["Last-Modified"]})
    other = fetch("GET", url, token, headers={**ranged, "If-Range": '"0123456789abcdef"'})

    assert (same[0], same[2]) == (206, tool.read_bytes()[10:20])
    assert (same_date[0], same_date[2]) == (206, tool.read_bytes()[10:20])
    assert (other[0], other[2]) == (200, tool.read_bytes())
