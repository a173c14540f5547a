"""Fixtures of the access matrices: every kind of caller's secret, clients sending them,
and the upstream of a proxy channel."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiToken
from channels_app.lifecycle import create_channel

from ..upstream.conftest import static_upstream, upstream_networks  # noqa: F401 - fixtures


@pytest.fixture
def other_channel(users):
    return create_channel(users["owner"], "elsewhere", private=True)


@pytest.fixture
def secrets(tokens, users, other_channel):
    """Every caller's secret (None for anonymous); the odd tokens all belong to the owner."""
    owner = users["owner"]
    revoked_token, revoked = ApiToken.create_for(owner, "revoked")
    revoked_token.revoke()
    expired_token, expired = ApiToken.create_for(owner, "expired", expires_in_days=1)
    ApiToken.objects.filter(pk=expired_token.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    _, read_only = ApiToken.create_for(owner, "read-only", read_only=True)
    _, limited = ApiToken.create_for(owner, "limited", channels=[other_channel])
    return {
        "anonymous": None,
        **tokens,
        "revoked": revoked,
        "expired": expired,
        "read-only": read_only,
        "other-channel": limited,
    }


@pytest.fixture
def client_as(client_for, secrets):
    def make(who):
        return client_for(secret=secrets[who])

    return make
