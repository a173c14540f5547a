"""Fixtures of the organisation pages: the people, acme with its channels and team, and a
browser-like client signed in as any of them."""

import pytest
from django.test import Client

from accounts.models import OrgRole
from channels_app.models import Role
from channels_app.orgs import operations as organizations

from ..test_organizations import join


@pytest.fixture
def people(django_user_model):
    """boss owns acme, admin administers it, dev is in its team "devs", plain is a member
    of acme only, stranger is not in it."""
    return {
        name: django_user_model.objects.create_user(name, f"{name}@example.org", "pw-" + name)
        for name in ("boss", "admin", "dev", "plain", "stranger")
    }


@pytest.fixture
def acme(people):
    """acme with its public channel acme-tools and its private acme-vault, which team
    "devs" (dev) maintains."""
    org = organizations.create_organization(people["boss"], "acme", description="Rockets")
    join(org, people["admin"], OrgRole.ADMIN, people["boss"])
    join(org, people["dev"], OrgRole.MEMBER, people["boss"])
    join(org, people["plain"], OrgRole.MEMBER, people["admin"])
    organizations.create_channel(org, "acme-tools", people["boss"])
    vault = organizations.create_channel(org, "acme-vault", people["boss"], private=True)
    team = organizations.create_team(org, "devs", people["admin"])
    organizations.add_team_member(team, people["dev"], people["admin"])
    organizations.set_team_channel_role(team, vault, Role.MAINTAINER, people["admin"])
    return org


@pytest.fixture
def web(people):
    """``web("boss")`` is a browser-like client signed in as that person; ``web()`` anonymous."""

    def make(who=None, **kwargs):
        client = Client(**kwargs)
        if who:
            client.force_login(people[who])
        return client

    return make
