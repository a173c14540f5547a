"""Wharf's processes for benchmarks: gunicorn and Celery workers on the bench database."""

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from . import common

# The checkout whose gunicorn and Celery workers are started: this one, or another commit's
# (e.g. ``git archive <commit> | tar -x -C /tmp/before``) to measure before and after on
# the same database and files.
SERVED_ROOT = Path(os.environ.get("WHARF_BENCH_SERVED_ROOT") or common.ROOT)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(process, ready, log, timeout=60):
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise RuntimeError(f"{process.args} did not start:\n{Path(log).read_text()[-3000:]}")
        time.sleep(0.2)


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def wharf(
    workers=2, threads=8, celery_workers=1, celery_concurrency=2, embedded=False, logs=None, **env
):
    """Yield the base URL of a running Wharf (gunicorn + Celery workers unless embedded).

    The processes get this process's environment (as set by ``common.setup_django``) and
    write their logs to ``logs`` (default var/bench/logs).
    """
    port = free_port()
    environment = {**os.environ, **env}
    if embedded:
        environment["REDIS_URL"] = ""
    logs = Path(logs or common.BENCH_DIR / "logs")
    logs.mkdir(parents=True, exist_ok=True)
    processes = []
    try:
        if not embedded:
            for number in range(celery_workers):
                log = logs / f"worker-{number}.log"
                argv = [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "registry",
                    "worker",
                    "-n",
                    f"bench{number}@%h",
                    "--concurrency",
                    str(celery_concurrency),
                    "--loglevel",
                    os.environ.get("BENCH_LOGLEVEL", "WARNING"),
                    "--without-gossip",
                    "--without-mingle",
                ]
                processes.append(_popen(argv, environment, log))
        log = logs / "gunicorn.log"
        access = logs / "access.log"
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "registry.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--timeout",
            "600",
            "--access-logfile",
            str(access),
            "--access-logformat",
            "%(m)s %(U)s %(s)s %({content-length}o)s",
        ]
        server = _popen(argv, environment, log)
        processes.append(server)
        _wait(server, lambda: _listening(port), log)
        if not embedded:
            from celery import Celery

            control = Celery(broker=environment["REDIS_URL"]).control
            deadline = time.monotonic() + 60
            while len(control.ping(timeout=1)) < celery_workers:
                if time.monotonic() > deadline:
                    raise RuntimeError("the Celery workers did not answer")
        yield f"http://127.0.0.1:{port}", server
    finally:
        for process in processes:
            stop(process)


def _popen(argv, environment, log):
    with open(log, "w") as out:
        return subprocess.Popen(
            argv, cwd=SERVED_ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT
        )


def upload_body(path):
    """(Content-Type, body) of a package POSTed as rattler-build does (multipart, part
    headers ``x-file-name`` and ``x-file-sha256``)."""
    data = Path(path).read_bytes()
    boundary = "wharf-bench-boundary"
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{Path(path).name}"\r\n'
        "content-type: application/octet-stream\r\n"
        f"x-file-name: {Path(path).name}\r\n"
        f"x-file-sha256: {hashlib.sha256(data).hexdigest()}\r\n\r\n"
    ).encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", body


def upload(base_url, channel, token, path):
    """POST a package as rattler-build does (see :func:`upload_body`); return the status."""
    content_type, body = upload_body(path)
    request = urllib.request.Request(
        f"{base_url}/api/v1/upload/{channel}",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def get(base_url, path, token):
    request = urllib.request.Request(
        f"{base_url}/{path}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.read()
