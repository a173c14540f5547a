"""Liveness (/healthz) and readiness (/readyz): cheap, unauthenticated, reachable over plain
HTTP by address, and naming what is missing when a real service is down."""

import orjson
import pytest

from accounts.authentication import failure_limit

from ..postgres import PrivatePostgres
from ..served import call

SETUP = """
from django.core.management import call_command
call_command("migrate", verbosity=0)
"""


def test_healthz_answers_without_touching_anything(client):
    # No django_db mark: a query would raise here.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_readyz_reports_each_check(client, settings):
    response = client.get("/readyz")
    assert response.status_code == 200
    expected = {"database": "ok", "migrations": "ok", "storage": "ok"}
    if settings.REDIS_URL:
        expected["redis"] = "ok"
    assert response.json() == {"status": "ready", "checks": expected}
    assert client.head("/readyz").status_code == 200
    assert client.post("/readyz").status_code == 405


@pytest.mark.django_db
def test_probes_answer_over_http_for_any_host_in_production(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["wharf.example.org"]
    # A load balancer probes a process by its address, over plain HTTP.
    for path in ("/healthz", "/readyz"):
        assert client.get(path, HTTP_HOST="10.0.0.7:8000").status_code == 200
    assert client.get("/", HTTP_HOST="wharf.example.org").status_code == 301
    assert client.get("/", HTTP_HOST="10.0.0.7:8000").status_code == 400


@pytest.mark.django_db
def test_probes_are_neither_refused_nor_counted_by_the_failure_limit(client, settings):
    settings.WHARF_AUTH_FAILURE_LIMIT = 2
    bad = {"HTTP_AUTHORIZATION": "Bearer wharf-" + "x" * 40}
    for _ in range(5):
        assert client.get("/healthz", **bad).status_code == 200
        assert client.get("/readyz", **bad).status_code == 200
    # The probes' bad credentials were not counted: two real failures are still needed.
    assert client.get("/api/v1/channels/", **bad).status_code == 401
    assert client.get("/api/v1/channels/", **bad).status_code == 401
    assert client.get("/api/v1/channels/", **bad).status_code == 429
    assert client.get("/healthz", **bad).status_code == 200
    failure_limit.forget("127.0.0.1")


@pytest.mark.django_db
def test_readyz_names_storage_that_cannot_be_written(client, settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": blocker / "storage"},
        },
    }
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["storage"] == "failed"
    assert body["checks"]["database"] == "ok"
    assert body["detail"] == "Not ready: the storage check failed."
    assert str(tmp_path) not in response.content.decode()


# -- real processes, real outages -----------------------------------------------------------


def probe(server, path):
    status, body = call("GET", f"{server}{path}")
    return status, orjson.loads(body) if body else None


@pytest.mark.django_db(transaction=True)
def test_readyz_names_redis_while_the_broker_is_down(processes):
    port = processes.free_port()  # nothing listens there yet
    server = processes.gunicorn({"REDIS_URL": f"redis://127.0.0.1:{port}/0"})

    status, body = probe(server, "/readyz")
    assert status == 503
    assert body["checks"]["redis"] == "failed"
    assert body["checks"]["database"] == "ok"
    assert "redis" in body["detail"]
    assert str(port) not in str(body)  # no connection strings
    assert probe(server, "/healthz") == (200, {"status": "ok"})

    processes.redis(port=port)
    status, body = probe(server, "/readyz")
    assert status == 200
    assert body["checks"]["redis"] == "ok"


@pytest.mark.django_db(transaction=True)
def test_readyz_names_migrations_not_applied(processes, tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'new.sqlite3'}", "WHARF_DATA_DIR": str(tmp_path)}
    server = processes.gunicorn(env)

    status, body = probe(server, "/readyz")
    assert status == 503
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["migrations"] == "failed"

    processes.run(["manage.py", "shell", "-c", SETUP], env)
    assert probe(server, "/readyz")[0] == 200


@pytest.mark.django_db(transaction=True)
def test_readyz_names_the_database_while_it_is_stopped(processes, tmp_path):
    cluster = PrivatePostgres(processes.free_port())
    try:
        env = {"DATABASE_URL": cluster.url, "WHARF_DATA_DIR": str(tmp_path)}
        processes.run(["manage.py", "shell", "-c", SETUP], env)
        server = processes.gunicorn(env)
        assert probe(server, "/readyz")[0] == 200

        cluster.stop()
        status, body = probe(server, "/readyz")
        assert status == 503
        assert body["checks"]["database"] == "failed"
        assert body["checks"]["migrations"] == "skipped"
        assert body["detail"] == "Not ready: the database check failed."
        assert str(cluster.port) not in str(body)
        assert probe(server, "/healthz") == (200, {"status": "ok"})

        cluster.start()
        assert probe(server, "/readyz")[0] == 200
    finally:
        cluster.remove()
