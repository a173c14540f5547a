"""Organisations in the access policy: a user's role on a channel is the highest of their
direct membership, their teams' roles and (owner) being an owner or admin of the channel's
organisation; being a member of the organisation alone gives nothing.
"""

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.authentication import Caller
from accounts.models import ApiToken, OrganizationMember, OrgRole, TeamMember
from channels_app import members
from channels_app.access import (
    Action,
    NotFound,
    authorize,
    channel_for,
    readable_channels,
)
from channels_app.lifecycle import create_channel
from channels_app.models import Membership, Role
from channels_app.orgs import operations as organizations
from packages_app.conda import routes
from packages_app.discovery import catalog
from registry.adminsite import owned_channels

from ..packages import catalog_file, upload, wait_for_index

pytestmark = pytest.mark.django_db


def join(organization, user, role, by):
    """``user`` joins as ``role``, the one way there is: invited, then accepting."""
    invitation = organizations.invite(organization, user.username, role, by)
    return organizations.accept(invitation, user)


@pytest.fixture
def people(django_user_model):
    """boss owns the organisation, admin administers it, dev is in the team, plain is a
    member of the organisation only, stranger is not in it."""
    return {
        name: django_user_model.objects.create_user(name, f"{name}@example.org", "pw-" + name)
        for name in ("boss", "admin", "dev", "plain", "stranger")
    }


@pytest.fixture
def acme(people):
    org = organizations.create_organization(people["boss"], "acme")
    join(org, people["admin"], OrgRole.ADMIN, people["boss"])
    join(org, people["dev"], OrgRole.MEMBER, people["boss"])
    join(org, people["plain"], OrgRole.MEMBER, people["admin"])
    return org


@pytest.fixture
def vault(acme, people):
    """A private channel of acme; team "devs" (dev) maintains it."""
    channel = organizations.create_channel(acme, "acme-vault", people["boss"], private=True)
    team = organizations.create_team(acme, "devs", people["admin"])
    organizations.add_team_member(team, people["dev"], people["admin"])
    organizations.set_team_channel_role(team, channel, Role.MAINTAINER, people["admin"])
    return channel


def role(user, channel_name):
    return channel_for(Caller(user), channel_name).role_of(user)


def test_it_gives_org_owners_and_admins_the_owner_role_on_its_channels(people, vault):
    assert role(people["boss"], "acme-vault") == Role.OWNER
    assert role(people["admin"], "acme-vault") == Role.OWNER
    assert authorize(Caller(people["admin"]), "acme-vault", Action.DELETE_CHANNEL) == vault
    # Creating in the organisation gives the creator no role of their own.
    assert not Membership.objects.filter(channel=vault).exists()


def test_it_gives_team_members_the_team_role(people, vault):
    assert role(people["dev"], "acme-vault") == Role.MAINTAINER
    assert authorize(Caller(people["dev"]), "acme-vault", Action.UPLOAD) == vault


def test_a_member_of_the_organisation_alone_gets_nothing_on_a_private_channel(people, vault):
    assert role(people["plain"], "acme-vault") is None
    with pytest.raises(NotFound):
        authorize(Caller(people["plain"]), "acme-vault")
    assert vault not in readable_channels(Caller(people["plain"]))


def test_the_highest_of_direct_team_and_organisation_roles_wins(people, acme, vault):
    dev = people["dev"]
    # Direct member < team maintainer: maintainer.
    members.add(vault, dev, Role.MEMBER)
    assert role(dev, "acme-vault") == Role.MAINTAINER
    # A second team with the owner role: owner.
    leads = organizations.create_team(acme, "leads", people["boss"])
    organizations.add_team_member(leads, dev, people["boss"])
    organizations.set_team_channel_role(leads, vault, Role.OWNER, people["boss"])
    assert role(dev, "acme-vault") == Role.OWNER
    assert vault.role_of(dev) == Role.OWNER  # the model's own answer agrees
    # Direct owner beats a team member role; organisation admin beats a direct member.
    organizations.set_team_channel_role(leads, vault, Role.MEMBER, people["boss"])
    members.change_role(Membership.objects.get(channel=vault, user=dev), Role.OWNER)
    assert role(dev, "acme-vault") == Role.OWNER
    members.add(vault, people["admin"], Role.MEMBER)
    assert role(people["admin"], "acme-vault") == Role.OWNER


def test_it_reads_the_channel_and_every_source_of_the_role_in_one_query(
    people, vault, django_assert_num_queries
):
    with django_assert_num_queries(1):
        channel = channel_for(Caller(people["dev"]), "acme-vault")
        assert channel.role_of(people["dev"]) == Role.MAINTAINER


def test_a_token_limited_to_other_channels_still_limits_a_team_member(people, vault, client_for):
    other = create_channel(people["dev"], "dev-own")
    _, limited = ApiToken.create_for(people["dev"], "own only", channels=[other])
    _, full = ApiToken.create_for(people["dev"], "full")

    assert client_for(secret=full).get("/api/v1/channels/acme-vault/").status_code == 200
    assert client_for(secret=limited).get("/api/v1/channels/acme-vault/").status_code == 404
    assert client_for(secret=limited).get("/acme-vault/noarch/repodata.json").status_code == 404
    listed = client_for(secret=limited).get("/api/v1/channels/").json()
    names = [c["name"] for c in listed.get("results", listed)]
    assert "acme-vault" not in names and "dev-own" in names


def test_an_outsider_never_sees_private_org_channels_in_lists_or_search(people, vault, client_for):
    catalog_file(vault, "noarch", "vaulted-tool", "1.0")
    catalog.refresh(vault, ["vaulted-tool"])
    for name in ("stranger", "plain"):
        _, secret = ApiToken.create_for(people[name], "t")
        client = client_for(secret=secret)
        listed = client.get("/api/v1/channels/").json()
        assert "acme-vault" not in [c["name"] for c in listed.get("results", listed)]
        hits = client.get("/api/v1/search", {"q": "vaulted"}).json()
        assert "vaulted" not in str(hits)
        web = Client()
        web.force_login(people[name])
        assert b"acme-vault" not in web.get("/channels/").content
        assert web.get("/acme-vault/").status_code == 404
    # ... while the team member finds it.
    _, secret = ApiToken.create_for(people["dev"], "t")
    assert "vaulted-tool" in str(
        client_for(secret=secret).get("/api/v1/search", {"q": "vaulted"}).json()
    )


def test_your_channels_lists_channels_by_team_and_by_organisation(people, vault):
    web = Client()
    for name, expected in (("dev", "maintainer"), ("admin", "owner")):
        web.force_login(people[name])
        mine = web.get("/channels/").context["mine"]
        assert [(c.name, c.role) for c in mine] == [("acme-vault", expected)]


def test_removing_someone_from_the_organisation_removes_them_from_its_teams(people, acme, vault):
    dev = people["dev"]
    member = OrganizationMember.objects.get(organization=acme, user=dev)
    organizations.remove_member(member, people["admin"])

    assert not TeamMember.objects.filter(user=dev).exists()
    assert role(dev, "acme-vault") is None
    with pytest.raises(NotFound):
        authorize(Caller(dev), "acme-vault")


def test_an_org_channel_may_lose_its_last_direct_owner(people, acme):
    channel = create_channel(people["boss"], "moving")
    organizations.transfer_channel(channel, acme, people["boss"])
    members.remove(Membership.objects.get(channel=channel, user=people["boss"]))
    # The organisation's owners own it still.
    assert role(people["boss"], "moving") == Role.OWNER


def test_a_user_channel_keeps_its_last_owner(people):
    channel = create_channel(people["boss"], "mine")
    with pytest.raises(ValidationError, match="at least one owner"):
        members.remove(Membership.objects.get(channel=channel, user=people["boss"]))


def test_the_admin_offers_org_channels_to_those_who_own_them(people, acme, vault):
    assert list(owned_channels(people["admin"])) == [vault]
    assert list(owned_channels(people["boss"])) == [vault]
    assert list(owned_channels(people["dev"])) == []  # maintainer, not owner
    assert list(owned_channels(people["plain"])) == []


@pytest.mark.django_db(transaction=True)
def test_a_team_member_downloads_from_a_private_org_channel_by_the_fast_path(
    people, vault, packages
):
    from accounts import authentication

    _, boss_secret = ApiToken.create_for(people["boss"], "boss")
    _, dev_secret = ApiToken.create_for(people["dev"], "dev")
    _, plain_secret = ApiToken.create_for(people["plain"], "plain")
    boss = APIClient()
    boss.credentials(HTTP_AUTHORIZATION=f"Bearer {boss_secret}")
    path = packages.make("vaulted", "1.0")
    assert upload(boss, "acme-vault", path).status_code == 201
    wait_for_index(vault, "noarch")

    url = f"/t/{dev_secret}/acme-vault/noarch/{path.name}"
    assert routes.fast_route(RequestFactory().get(url)) is not None
    authentication.token_cache.clear()
    client = Client()
    response = client.get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == path.read_bytes()
    # The token is cached now: one query reads channel, every role source and the file
    # (besides, in embedded mode, the download count written at once).
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    reads = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    assert len(reads) == 1 and "teammember" in reads[0] and "organizationmember" in reads[0]
    # A member of the organisation without a team gets what a stranger gets.
    assert client.get(f"/t/{plain_secret}/acme-vault/noarch/{path.name}").status_code == 404
    authentication.token_cache.clear()
