"""Recovery in seconds with the default settings: a Celery worker killed whole (main
process and pool) while it holds index leases, and a web server killed mid-upload.

Real processes — gunicorn, Celery workers and beat, a redis-server of the test's own —
and no setting shortened: the leases, the reconciler and the cleanup run as deployed.
"""

import socket
import threading
import time

import orjson
import pytest
from django.utils import timezone

from packages_app.models import PackageFile, StagedFile, SubdirIndex

from ..packages import eventually, wait_for_index
from ..served import call, filenames, orphan_package_files, served_filenames
from ..served import upload as upload_over_http

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

SUBDIR = "linux-64"


def stored_filenames(channel, subdir):
    rows = PackageFile.objects.filter(channel=channel, subdir=subdir)
    return set(rows.values_list("filename", flat=True))


def _served_now(server, channel, token):
    status, body = call("GET", f"{server}/{channel}/{SUBDIR}/repodata.json", token)
    return filenames(orjson.loads(body)) if status == 200 else set()


@pytest.mark.parametrize("recovery", ["restarted", "second worker"])
def test_every_upload_is_served_within_30_s_after_the_whole_worker_is_killed(
    recovery, processes, public_channel, tokens, packages
):
    """SIGKILL of a Celery worker (main process and pool) holding index leases, in a burst
    of uploads, with the default lease and reconciler settings: once a worker runs again
    (restarted, or a second one all along), every upload answered 201 is served within
    30 s — not when a lease of minutes or the reconciler's next round comes."""
    port = processes.redis().port
    env = {"REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    server = processes.gunicorn(env)
    channel, token = public_channel.name, tokens["owner"]
    # Each rebuild it takes stops before publishing, its lease held (and renewed).
    doomed = processes.worker("doomed", env, concurrency=2, paused=("publish", 600))
    if recovery == "second worker":
        processes.worker("survivor", env)
    processes.beat(env, reconcile_seconds=None)
    accepted, stop = [], threading.Event()

    def uploader(number):
        for i in range(12):
            path = packages.make(f"burst{number}x{i}", "1.0", SUBDIR)
            status, body = upload_over_http(server, channel, token, path)
            assert status == 201, body
            accepted.append(path.name)
            if stop.wait(0.3):
                return

    threads = [threading.Thread(target=uploader, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()

    def leased_by_the_doomed_worker():
        index = SubdirIndex.objects.filter(channel=public_channel, subdir=SUBDIR).first()
        assert index and index.lease_owner and index.lease_until > timezone.now()

    eventually(leased_by_the_doomed_worker)
    time.sleep(1)
    processes.kill(doomed)
    killed = time.monotonic()
    # Its lease stays until it lapses: nobody let it go.
    assert SubdirIndex.objects.get(channel=public_channel, subdir=SUBDIR).lease_owner
    running_again = killed
    if recovery == "restarted":
        time.sleep(2)
        processes.worker("restarted", env)
        running_again = time.monotonic()
    for thread in threads:
        thread.join()
    assert len(accepted) == 48

    def all_served():
        assert set(accepted) <= _served_now(server, channel, token)

    eventually(all_served, timeout=30)
    took = time.monotonic() - running_again
    print(f"all {len(accepted)} uploads served {took:.1f} s after a worker ran again")
    assert took <= 30
    wait_for_index(public_channel, SUBDIR, timeout=30)
    assert served_filenames(server, channel, token, SUBDIR) == stored_filenames(
        public_channel, SUBDIR
    )


def _half_sent_upload(server, channel, token, size=3 * 1024 * 1024):
    """A socket on which half of a large upload's body was sent: its temporary file is
    being written by the server (which reads the body 1 MiB at a time)."""
    boundary = "half-sent"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="big-1.0-0.conda"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    length = len(head) + size + len(f"\r\n--{boundary}--\r\n")
    host, port = server.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    request = (
        f"POST /api/v1/upload/{channel} HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )
    sock.sendall(request.encode() + head + b"\0" * (size // 2))
    return sock


def test_a_web_server_killed_mid_upload_leaves_no_temporary_file_or_unrecorded_object(
    processes, public_channel, tokens, packages, tmp_path
):
    temp = tmp_path / "upload-temp"
    temp.mkdir()
    env = {"WHARF_UPLOAD_TEMP_DIR": str(temp)}  # and the default settings otherwise
    channel, token = public_channel.name, tokens["owner"]
    port = processes.free_port()
    # Its uploads stop between storing the bytes and committing the row.
    server = processes.gunicorn(env, paused=("store", 600), port=port)
    doomed = processes.started[-1]
    sockets = [_half_sent_upload(server, channel, token) for _ in range(2)]
    stored = threading.Thread(
        target=upload_over_http, args=(server, channel, token, packages.make("stored"))
    )
    stored.start()

    def in_the_middle():
        assert len(list(temp.glob("wharf-upload-*"))) == 3
        assert len(orphan_package_files(public_channel)) == 1

    eventually(in_the_middle)
    processes.kill(doomed)
    stored.join()
    for sock in sockets:
        sock.close()
    assert len(list(temp.glob("wharf-upload-*"))) == 3  # what the killed server left
    assert len(orphan_package_files(public_channel)) == 1
    killed = time.monotonic()

    processes.gunicorn(env, port=port, name="gunicorn-again")

    def reclaimed():
        assert list(temp.glob("wharf-upload-*")) == []
        assert orphan_package_files(public_channel) == set()
        assert not StagedFile.objects.exists()

    eventually(reclaimed, timeout=30)
    print(f"reclaimed {time.monotonic() - killed:.1f} s after the kill")
    assert not PackageFile.objects.filter(channel=public_channel).exists()
