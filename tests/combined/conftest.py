"""A team's private channel, a public channel standing in for conda-forge, and the
combined channel "team-all" of both, created through the REST API as users do."""

import pytest

from channels_app.models import Channel, Membership, Role

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
