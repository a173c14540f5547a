"""Shared fixtures: the owner / maintainer / member / outsider quartet, tokens, channels,
real package files, and — for end-to-end tests — a live gunicorn server and, in services
mode (REDIS_URL set), a real Celery worker, both on the test database.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from accounts.models import ApiToken
from channels_app.lifecycle import create_channel
from channels_app.models import Membership, Role

from .labels import dev_and_main, private_dev  # noqa: F401 - fixtures
from .packages import PackageFactory
from .s3 import s3_server  # noqa: F401 - a fixture

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def clean_storage():
    shutil.rmtree(settings.STORAGE_DIR, ignore_errors=True)
    settings.STORAGE_DIR.mkdir(parents=True)


def _subprocess_env():
    """The environment for server and worker processes: the same test database."""
    env = dict(os.environ)
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    else:
        parts = urlsplit(settings.DATABASE_URL)
        env["DATABASE_URL"] = urlunsplit(parts._replace(path="/" + db["NAME"]))
    env["DJANGO_SETTINGS_MODULE"] = "registry.settings"
    env["WHARF_BZ2_DELAY_SECONDS"] = "0"
    # Upstreams of proxy channels in tests are on loopback (tests/upstream/).
    env["WHARF_UPSTREAM_PRIVATE_NETWORKS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session", autouse=True)
def celery_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """In services mode every test runs against a real worker consuming Redis.

    An unreachable Redis fails the run: nothing here is skipped.
    """
    if not settings.REDIS_URL:
        yield None
        return
    import redis

    redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=5).ping()
    from registry.celery import app

    app.control.purge()
    argv = ["-m", "celery", "-A", "registry", "worker", "--loglevel", "INFO", "--concurrency",
            "2", "--without-gossip", "--without-mingle", "--queues", "celery,mirrors"]  # fmt: skip
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    process = start_process(argv, log, ready=lambda: bool(app.control.ping(timeout=1)))
    yield process
    _stop(process)


def start_process(argv, log, ready, timeout=60):
    """Start ``python argv`` on the test database; wait until ``ready()`` is true."""
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, *argv], cwd=ROOT, env=_subprocess_env(), stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            raise RuntimeError(f"{argv} exited:\n{log.read_text()}")
        if time.monotonic() > deadline:
            _stop(process)
            raise RuntimeError(f"{argv} did not start:\n{log.read_text()}")
        time.sleep(0.2)
    return process


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _accepts_connections(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def live_server_url(django_db_setup, celery_worker, tmp_path_factory):
    """A real gunicorn serving Wharf on the test database (chunked uploads included)."""
    port = _free_port()
    argv = ["-m", "gunicorn", "registry.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2",
            "--threads", "8", "--timeout", "120"]  # fmt: skip
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    process = start_process(argv, log, ready=lambda: _accepts_connections(port))
    yield f"http://127.0.0.1:{port}"
    _stop(process)


@pytest.fixture(autouse=True)
def background_work_finishes(request):
    """Index work a test caused ends inside that test.

    Embedded mode compresses .bz2 in a thread. In services mode the Celery worker may
    still be rebuilding when a transactional test ends; the database flush after it
    (TRUNCATE) would then deadlock with the worker's writes and leave the rows behind.
    """
    marker = request.node.get_closest_marker("django_db")
    transactional = marker is not None and marker.kwargs.get("transaction", False)
    if transactional:
        request.getfixturevalue("transactional_db")  # set up first, so flushed after this
    yield
    from packages_app import runner
    from packages_app.index import records as index_records
    from packages_app.upstream import serving as upstream_serving

    runner.wait_for_background_work()
    # Cached records are keyed by SubdirIndex id, and the flush lets SQLite reuse ids;
    # what a process knows of proxied subdirs, by channel id.
    index_records.record_sets.clear()
    upstream_serving._fresh_until.clear()
    if (
        transactional
        and settings.REDIS_URL
        and not request.node.get_closest_marker("index_left_behind")
    ):
        _wait_for_the_worker()


def _wait_for_the_worker(timeout=20):
    """Until no index is behind or leased, nor a combined channel's entry being built
    (bounded: a fault test may leave one so)."""
    from django.db.models import F, Q
    from django.utils import timezone

    from packages_app.models import CombinedIndex, SubdirIndex

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = Q(built_revision__lt=F("requested_revision")) | Q(lease_until__gt=timezone.now())
        building = CombinedIndex.objects.filter(lease_until__gt=timezone.now())
        if not SubdirIndex.objects.filter(busy).exists() and not building.exists():
            return
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def fast_settings(settings):
    # The production hasher takes a quarter of a second by design; tests make many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Tests look at .bz2 right after a change; production waits to batch changes.
    settings.WHARF_BZ2_DELAY_SECONDS = 0
    # In-process rebuilds clean up at once, so tests can look for leftover folders; the
    # servers and workers the tests start keep the production grace, as their readers
    # need it (test_incremental_index checks the grace itself).
    settings.WHARF_RETIRED_INDEX_SECONDS = 0


@pytest.fixture
def users(django_user_model):
    """Four people: an owner, a maintainer and a member of the channels, and an outsider."""
    return {
        name: django_user_model.objects.create_user(name, f"{name}@example.org", "pw-" + name)
        for name in ("owner", "maintainer", "member", "outsider")
    }


def _add_members(channel, users):
    Membership.objects.create(channel=channel, user=users["maintainer"], role=Role.MAINTAINER)
    Membership.objects.create(channel=channel, user=users["member"], role=Role.MEMBER)


@pytest.fixture
def private_channel(users):
    channel = create_channel(users["owner"], "private-team", private=True, description="Ours")
    _add_members(channel, users)
    return channel


@pytest.fixture
def public_channel(users):
    channel = create_channel(users["owner"], "open-tools", private=False)
    _add_members(channel, users)
    return channel


@pytest.fixture
def tokens(users):
    """One full token per person (secrets)."""
    return {name: ApiToken.create_for(user, f"{name}-token")[1] for name, user in users.items()}


@pytest.fixture
def client_for(tokens):
    """``client_for("owner")`` is an APIClient sending that person's token as Bearer."""

    def make(who=None, secret=None):
        client = APIClient()
        secret = secret or (tokens[who] if who else None)
        if secret:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        return client

    return make


@pytest.fixture
def packages(tmp_path):
    return PackageFactory(tmp_path / "packages")


class Processes:
    """Processes one test starts (gunicorn, Celery workers or beat, a throwaway redis-server),
    each in a session of its own so that :meth:`kill` takes its whole tree as a crash would.
    They run on the test database unless ``env`` says otherwise; all stop with the test.
    """

    def __init__(self, folder):
        self.folder = folder
        self.started = []

    def start(self, name, argv, *, ready, env=None, python=True, timeout=60, cwd=ROOT):
        log = self.folder / f"{name}.log"
        with open(log, "a") as out:
            process = subprocess.Popen(
                [sys.executable, *argv] if python else argv, cwd=cwd,
                env={**_subprocess_env(), **(env or {})}, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        process.log = log
        self.started.append(process)
        deadline = time.monotonic() + timeout
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                self.kill(process)
                raise RuntimeError(f"{name} did not start:\n{log.read_text()}")
            time.sleep(0.1)
        return process

    def run(self, argv, env=None):
        """Run ``python argv`` to its end on the same terms; return its output."""
        return subprocess.run(
            [sys.executable, *argv], cwd=ROOT, env={**_subprocess_env(), **(env or {})},
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip

    def worker(self, name, env=None, concurrency=1, paused=None):
        """A Celery worker; ``env`` must name its broker (REDIS_URL) unless it is the tests'.
        ``paused=(point, seconds)`` makes it stop there (tests/paused.py)."""
        argv = ["-m", "celery", "-A", "registry", "worker", "--loglevel", "INFO", "-n",
                f"{name}@%h", "--concurrency", str(concurrency), "--without-gossip",
                "--without-mingle"]  # fmt: skip
        if paused:
            argv = ["-m", "tests.paused", paused[0], str(paused[1]), *argv]
        log = self.folder / f"{name}.log"
        return self.start(name, argv, env=env, ready=lambda: " ready." in log.read_text())

    def gunicorn(self, env=None, args=(), paused=None, port=None, name="gunicorn"):
        """Wharf in gunicorn (``args`` added to its command line); returns its base URL.
        ``paused=(point, seconds)`` makes its workers stop there (tests/paused.py)."""
        port = port or _free_port()
        argv = ["-m", "gunicorn", "registry.wsgi", "--bind", f"127.0.0.1:{port}", "--workers",
                "2", "--threads", "4", "--timeout", "120", *args]  # fmt: skip
        if paused:
            argv = ["-m", "tests.paused", paused[0], str(paused[1]), *argv]
        self.start(name, argv, env=env, ready=lambda: _accepts_connections(port))
        return f"http://127.0.0.1:{port}"

    def beat(self, env=None, reconcile_seconds=1):
        """Celery beat, sending the reconciler every ``reconcile_seconds`` (None: the
        default setting)."""
        log = self.folder / "beat.log"
        argv = ["-m", "celery", "-A", "registry", "beat", "--loglevel", "INFO", "--schedule",
                str(self.folder / "beat-schedule")]  # fmt: skip
        env = dict(env or {})
        if reconcile_seconds is not None:
            env["WHARF_RECONCILE_SECONDS"] = str(reconcile_seconds)
        return self.start("beat", argv, env=env, ready=lambda: "beat: Starting" in log.read_text())

    def redis(self, name="redis", port=None):
        """A redis-server of the test's own (``.port``); the tests' Redis is never stopped."""
        port = port or _free_port()
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no"]  # fmt: skip
        process = self.start(name, argv, python=False, ready=lambda: _accepts_connections(port))
        process.port = port
        return process

    free_port = staticmethod(_free_port)
    accepts_connections = staticmethod(_accepts_connections)

    def kill(self, process, sig=signal.SIGKILL, wait=30):
        import contextlib

        with contextlib.suppress(ProcessLookupError):  # the whole group has ended
            os.killpg(process.pid, sig)
        process.wait(timeout=wait)

    def stop_all(self):
        for process in reversed(self.started):
            try:
                self.kill(process, signal.SIGTERM, wait=15)
            except subprocess.TimeoutExpired:
                self.kill(process)


@pytest.fixture
def processes(tmp_path):
    """Start processes for one test (:class:`Processes`); their logs are in tmp_path."""
    started = Processes(tmp_path)
    yield started
    started.stop_all()


@pytest.fixture(autouse=True)
def no_failed_authentications_left():
    """Tests that present bad credentials on purpose must not get later tests (or the next
    run, with Redis) refused with 429 at the test client's address."""
    from accounts.authentication import failure_limit

    failure_limit.forget("127.0.0.1")
