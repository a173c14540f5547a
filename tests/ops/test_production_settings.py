"""Production settings: refused without a real secret key or with DEBUG, secure cookies,
HSTS and the HTTPS redirect on, Redis as the cache when there is Redis, and
`manage.py check --deploy` clean.
"""

import os
import runpy
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from ..deployment import ROOT

STRONG_KEY = "k" * 20 + "0123456789abcdefghijklmnopqrstuvwxyzABCD"


def settings_module(monkeypatch, tmp_path, **env):
    """The values registry/settings.py computes with ``env`` (on top of a clean slate)."""
    for name in list(os.environ):
        if name.startswith("WHARF_") or name in {"SECRET_KEY", "DEBUG", "REDIS_URL"}:
            monkeypatch.delenv(name)
    monkeypatch.setenv("WHARF_DATA_DIR", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "registry" / "settings.py"))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "SECRET_KEY is not set"),
        ({"SECRET_KEY": "short-but-set"}, "too weak"),
        ({"SECRET_KEY": "django-insecure-" + STRONG_KEY}, "too weak"),
        ({"SECRET_KEY": "ab" * 40}, "too weak"),
        ({"SECRET_KEY": STRONG_KEY, "DEBUG": "1"}, "DEBUG must be off"),
    ],
    ids=["no key", "short key", "django's placeholder", "repetitive key", "debug"],
)
def test_production_refuses_to_start_without_a_real_secret_key_or_with_debug(
    monkeypatch, tmp_path, env, message
):
    with pytest.raises(ImproperlyConfigured, match=message):
        settings_module(monkeypatch, tmp_path, WHARF_PRODUCTION="1", **env)

    assert not (tmp_path / "secret_key").exists()  # the embedded key is never a fallback


def test_production_turns_on_secure_cookies_hsts_and_the_https_redirect(monkeypatch, tmp_path):
    values = settings_module(
        monkeypatch, tmp_path, WHARF_PRODUCTION="1", SECRET_KEY=STRONG_KEY,
        WHARF_TRUSTED_PROXY_COUNT="1",
    )  # fmt: skip

    assert values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"]
    assert values["SECURE_SSL_REDIRECT"]
    assert values["SECURE_HSTS_SECONDS"] == 365 * 24 * 3600
    assert values["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")
    assert values["ALLAUTH_TRUSTED_PROXY_COUNT"] == 1


def test_the_embedded_mode_runs_over_plain_http(monkeypatch, tmp_path):
    values = settings_module(monkeypatch, tmp_path)

    assert not values["SESSION_COOKIE_SECURE"] and not values["SECURE_SSL_REDIRECT"]
    assert values["SECURE_HSTS_SECONDS"] == 0
    assert "SECURE_PROXY_SSL_HEADER" not in values
    assert len(values["SECRET_KEY"]) >= 50


def test_the_cache_is_redis_when_there_is_redis(monkeypatch, tmp_path):
    with_redis = settings_module(monkeypatch, tmp_path, REDIS_URL="redis://127.0.0.1:6379/3")
    without = settings_module(monkeypatch, tmp_path)

    assert with_redis["CACHES"]["default"]["BACKEND"].endswith("RedisCache")
    assert with_redis["CACHES"]["default"]["LOCATION"] == "redis://127.0.0.1:6379/3"
    assert without["CACHES"]["default"]["BACKEND"].endswith("LocMemCache")


@pytest.fixture(scope="module")
def deploy_check(tmp_path_factory):
    """``manage.py check --deploy`` with production settings: (exit code, output)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("WHARF_") and name not in {"SECRET_KEY", "DEBUG"}
    }
    env.update(
        WHARF_PRODUCTION="1",
        SECRET_KEY=STRONG_KEY,
        ALLOWED_HOSTS="wharf.example.org",
        WHARF_DATA_DIR=str(tmp_path_factory.mktemp("deploy")),
        DJANGO_SETTINGS_MODULE="registry.settings",
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def test_check_deploy_finds_no_security_problem_in_production_settings(deploy_check):
    _, output = deploy_check

    assert "security." not in output, output
    assert "ERRORS" not in output, output


def test_check_deploy_is_clean_with_production_settings(deploy_check):
    code, output = deploy_check

    assert code == 0, output
    assert "no issues" in output, output
