"""A team's private channel, a public channel standing in for conda-forge, and the
combined channel "team-all" of both, created through the REST API as users do."""

from datetime import timedelta

import pytest
from django.utils import timezone

from channels_app.models import Channel, Membership, Role
from packages_app.models import CombinedIndex

from ..packages import publish

COMBINED = "team-all"


def combine(client, members, name=COMBINED, private=True):
    """POST a combined channel of ``members``; the response."""
    return client.post(
        "/api/v1/channels/",
        {"name": name, "private": private, "combines": members},
        format="json",
    )


@pytest.fixture
def team(private_channel):
    return private_channel


@pytest.fixture
def forge(public_channel):
    return public_channel


@pytest.fixture
def team_all(client_for, users, team, forge):
    """team-all = [team, forge], private, owned by the owner; the member is a member of
    it (and of both members), as the maintainer is."""
    response = combine(client_for("owner"), [team.name, forge.name])
    assert response.status_code == 201, response.content
    channel = Channel.objects.get(name=COMBINED)
    for who, role in (("member", Role.MEMBER), ("maintainer", Role.MAINTAINER)):
        Membership.objects.create(channel=channel, user=users[who], role=role)
    return channel


@pytest.fixture
def publish_to(client_for, packages):
    """``publish_to(channel, name, version, subdir)``: a real package, uploaded and
    indexed; returns its path."""

    def make(channel, name, version="1.0", subdir="noarch", **extra):
        path = packages.make(name, version, subdir, **extra)
        publish(client_for, channel, path)
        return path

    return make


ELSEWHERE = "elsewhere"


@pytest.fixture
def built_elsewhere():
    """``built_elsewhere(row, seconds=60)`` marks the CombinedIndex ``row`` as another
    process marks it while it builds; the marks go with the test, so that nothing waits
    for a build that does not exist."""
    marked = []

    def mark(row, seconds=60, **fields):
        until = timezone.now() + timedelta(seconds=seconds)
        CombinedIndex.objects.filter(pk=row.pk).update(
            lease_owner=ELSEWHERE, lease_until=until, **fields
        )
        marked.append(row.pk)

    yield mark
    CombinedIndex.objects.filter(pk__in=marked, lease_owner=ELSEWHERE).update(
        lease_owner="", lease_until=None
    )
