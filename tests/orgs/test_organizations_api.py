"""Organisations by REST: invitations, roles, teams, organisation channels and transfers."""

from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.utils import timezone

from accounts.models import ApiToken, Invitation, Organization, OrganizationMember, OrgRole
from channels_app.lifecycle import create_channel
from channels_app.models import Channel, Membership, Role
from channels_app.orgs import operations as organizations

from ..packages import upload, wait_for_index

pytestmark = pytest.mark.django_db

ORG = "/api/v1/orgs/acme/"


@pytest.fixture
def people(django_user_model):
    """boss owns acme, admin administers it, plain is a member; dev and stranger are not
    in it (yet)."""
    return {
        name: django_user_model.objects.create_user(name, f"{name}@example.org", "pw-" + name)
        for name in ("boss", "admin", "plain", "dev", "stranger")
    }


@pytest.fixture
def api(people, client_for):
    """``api("boss")``: a REST client with a full token of that person."""
    secrets = {name: ApiToken.create_for(user, "full")[1] for name, user in people.items()}
    return lambda who=None: client_for(secret=secrets[who]) if who else client_for()


def join(organization, user, role, by):
    invitation = organizations.invite(organization, user.username, role, by)
    return organizations.accept(invitation, user)


@pytest.fixture
def acme(people):
    org = organizations.create_organization(people["boss"], "acme", display_name="Acme Inc.")
    join(org, people["admin"], OrgRole.ADMIN, people["boss"])
    join(org, people["plain"], OrgRole.MEMBER, people["boss"])
    mail.outbox.clear()
    return org


def invite(client, invitee, role="member"):
    return client.post(f"{ORG}invitations/", {"invitee": invitee, "role": role}, format="json")


def detail(response):
    return str(response.json().get("detail"))


# -- organisations -------------------------------------------------------------------------


def test_it_creates_an_organisation_owned_by_its_creator(api, people):
    response = api("dev").post("/api/v1/orgs/", {"name": "devco"}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["role"] == "owner"
    assert [o["name"] for o in api("dev").get("/api/v1/orgs/").json()["results"]] == ["devco"]
    again = api("stranger").post("/api/v1/orgs/", {"name": "devco"}, format="json")
    assert again.status_code == 400
    assert "already exists" in str(again.json())
    reserved = api("stranger").post("/api/v1/orgs/", {"name": "admin"}, format="json")
    assert reserved.status_code == 400 and "reserved" in str(reserved.json())


def test_anyone_sees_an_organisation_but_only_members_its_members_and_teams(api, acme):
    assert api().get(ORG).json()["display_name"] == "Acme Inc."
    assert api("stranger").get(ORG).json()["role"] is None
    for path in ("members/", "teams/"):
        assert api().get(ORG + path).status_code == 401
        refused = api("stranger").get(ORG + path)
        assert refused.status_code == 403
        assert detail(refused) == "Only members of 'acme' see its members and teams."
        assert "boss" not in refused.content.decode()
    members = api("plain").get(ORG + "members/").json()
    assert [(m["username"], m["role"]) for m in members] == [
        ("admin", "admin"), ("boss", "owner"), ("plain", "member"),
    ]  # fmt: skip
    assert api("stranger").get("/api/v1/orgs/nope/").status_code == 404


def test_org_changes_need_a_full_token(people, client_for, acme):
    _, read_only = ApiToken.create_for(people["boss"], "ro", read_only=True)
    response = client_for(secret=read_only).patch(ORG, {"description": "x"}, format="json")
    assert response.status_code == 403
    assert "read-only or limited" in detail(response)
    # Reading members is fine with it.
    assert client_for(secret=read_only).get(ORG + "members/").status_code == 200


def test_owners_and_admins_change_the_organisation_members_do_not(api, acme):
    assert api("admin").patch(ORG, {"description": "Tools"}, format="json").status_code == 200
    refused = api("plain").patch(ORG, {"description": "Mine"}, format="json")
    assert refused.status_code == 403
    assert detail(refused) == "You may not change 'acme' as member."
    assert api("admin").delete(ORG).status_code == 403


def test_deleting_an_organisation_with_channels_is_refused_naming_them(api, people, acme):
    organizations.create_channel(acme, "acme-tools", people["boss"])

    refused = api("boss").delete(ORG)

    assert refused.status_code == 400
    assert "acme-tools" in detail(refused)
    assert api("boss").delete("/api/v1/channels/acme-tools/").status_code == 204
    assert api("boss").delete(ORG).status_code == 204
    assert api("boss").get(ORG).status_code == 404


# -- invitations ---------------------------------------------------------------------------


def test_it_invites_by_username_and_the_invitee_joins_by_accepting(
    api, people, acme, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = invite(api("admin"), "dev", "member")

    assert response.status_code == 201, response.content
    invitation = response.json()
    assert (invitation["invitee"], invitation["status"]) == ("dev", "pending")
    # Not a member until accepted.
    assert not OrganizationMember.objects.filter(user=people["dev"]).exists()
    assert [m.to for m in mail.outbox] == [["dev@example.org"]]
    assert "acme" in mail.outbox[0].subject
    assert "http://testserver/orgs/" in mail.outbox[0].body
    mine = api("dev").get("/api/v1/invitations/").json()
    assert [(i["id"], i["organization"]) for i in mine] == [(invitation["id"], "acme")]

    accepted = api("dev").post(f"/api/v1/invitations/{invitation['id']}/accept/")

    assert accepted.status_code == 200
    assert accepted.json()["status"] == "accepted"
    assert OrganizationMember.objects.get(user=people["dev"]).role == "member"
    assert api("dev").get("/api/v1/invitations/").json() == []


def test_it_invites_an_address_no_user_has_and_its_owner_accepts_after_signing_up(
    api, acme, django_user_model, client_for, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = invite(api("boss"), "New.Person@Example.org", "admin")

    assert response.status_code == 201
    assert response.json()["invitee"] == "new.person@example.org"
    assert [m.to for m in mail.outbox] == [["new.person@example.org"]]
    newcomer = django_user_model.objects.create_user("newcomer", "new.person@example.org", "pw")
    address = EmailAddress.objects.create(
        user=newcomer, email="new.person@example.org", primary=True, verified=False
    )
    _, secret = ApiToken.create_for(newcomer, "t")
    # Not before the address is verified: anyone could sign up with it.
    assert client_for(secret=secret).get("/api/v1/invitations/").json() == []
    address.verified = True
    address.save()
    mine = client_for(secret=secret).get("/api/v1/invitations/").json()
    assert [i["organization"] for i in mine] == ["acme"]
    # Someone else cannot answer it: to them it does not exist.
    other = api("stranger").post(f"/api/v1/invitations/{mine[0]['id']}/accept/")
    assert other.status_code == 404

    accepted = client_for(secret=secret).post(f"/api/v1/invitations/{mine[0]['id']}/accept/")

    assert accepted.status_code == 200
    assert acme.members.get(user=newcomer).role == "admin"


def test_a_failure_to_send_the_e_mail_keeps_the_invitation(
    api, acme, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 1  # nothing listens there

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = invite(api("boss"), "dev")

    assert response.status_code == 201
    assert len(callbacks) == 1  # the sending was tried, and failed
    assert Invitation.objects.pending().filter(user__username="dev").exists()


def test_the_invitee_may_decline(api, people, acme):
    invitation = invite(api("boss"), "dev").json()

    declined = api("dev").post(f"/api/v1/invitations/{invitation['id']}/decline/")

    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    again = api("dev").post(f"/api/v1/invitations/{invitation['id']}/accept/")
    assert again.status_code == 400
    assert detail(again) == "This invitation was already declined."
    assert not acme.members.filter(user=people["dev"]).exists()


def test_a_withdrawn_invitation_cannot_be_accepted(api, people, acme):
    invitation = invite(api("boss"), "dev").json()

    assert api("admin").delete(f"{ORG}invitations/{invitation['id']}/").status_code == 204

    refused = api("dev").post(f"/api/v1/invitations/{invitation['id']}/accept/")
    assert refused.status_code == 400
    assert detail(refused) == "This invitation was already withdrawn."
    assert api("boss").get(f"{ORG}invitations/").json() == []
    assert api("dev").get("/api/v1/invitations/").json() == []


def test_an_expired_invitation_cannot_be_accepted(api, people, acme, settings):
    settings.WHARF_INVITATION_DAYS = 3
    invitation = invite(api("boss"), "dev").json()
    row = Invitation.objects.get(pk=invitation["id"])
    assert row.expires_at - row.created_at == timedelta(days=3)
    row.expires_at = timezone.now() - timedelta(seconds=1)
    row.save()

    refused = api("dev").post(f"/api/v1/invitations/{invitation['id']}/accept/")

    assert refused.status_code == 400
    assert "This invitation expired on" in detail(refused)
    assert "ask an owner or admin of 'acme' for a new one" in detail(refused)
    assert api("dev").get("/api/v1/invitations/").json() == []
    # An expired invitation does not block a new one.
    assert invite(api("boss"), "dev").status_code == 201


def test_it_refuses_a_second_pending_invitation_and_inviting_a_member(api, acme):
    first = invite(api("boss"), "dev").json()
    again = invite(api("admin"), "dev@example.org")
    assert again.status_code == 400
    assert f"invitation {first['id']}" in detail(again)
    by_mail = invite(api("boss"), "someone@example.com")
    assert by_mail.status_code == 201
    assert invite(api("boss"), "SOMEONE@example.com").status_code == 400

    member = invite(api("boss"), "plain")
    assert member.status_code == 400
    assert detail(member) == "plain is already a member of 'acme'."


def test_the_invite_lookup_matches_exactly_and_lists_no_one(api, people, acme):
    for partial in ("de", "DEV", "dev ", "*", "%"):
        response = invite(api("boss"), partial)
        name = partial.strip()
        if name == "dev":  # surrounding spaces are not part of a username
            assert response.status_code == 201
            api("boss").delete(f"{ORG}invitations/{response.json()['id']}/")
            continue
        assert response.status_code == 400, partial
        assert detail(response) == f"No user with username '{name}'."
    # A partial address is an address no user has: an invitation by e-mail, no user named.
    partial_address = invite(api("boss"), "ev@example.org").json()
    assert partial_address["invitee"] == "ev@example.org"
    assert Invitation.objects.get(pk=partial_address["id"]).user is None
    invalid = invite(api("boss"), "not@an@address")
    assert invalid.status_code == 400 and "not a valid e-mail address" in detail(invalid)


def test_invitations_are_for_owners_and_admins_and_hidden_from_others(api, acme):
    invite(api("boss"), "dev")
    assert api("plain").get(f"{ORG}invitations/").status_code == 403
    assert api("stranger").get(f"{ORG}invitations/").status_code == 403
    assert invite(api("plain"), "stranger").status_code == 403
    assert len(api("admin").get(f"{ORG}invitations/").json()) == 1


# -- roles ---------------------------------------------------------------------------------


def test_admins_cannot_make_or_touch_owners(api, acme):
    refused = invite(api("admin"), "dev", "owner")
    assert refused.status_code == 403
    assert detail(refused) == "Only owners of 'acme' may invite owners."
    promote = api("admin").patch(f"{ORG}members/plain/", {"role": "owner"}, format="json")
    assert promote.status_code == 403
    demote = api("admin").patch(f"{ORG}members/boss/", {"role": "member"}, format="json")
    assert demote.status_code == 403
    assert api("admin").delete(f"{ORG}members/boss/").status_code == 403
    # Among non-owners they may.
    ok = api("admin").patch(f"{ORG}members/plain/", {"role": "admin"}, format="json")
    assert ok.status_code == 200 and ok.json()["role"] == "admin"
    assert invite(api("boss"), "dev", "owner").status_code == 201


def test_the_last_owner_can_neither_leave_nor_be_demoted(api, people, acme):
    leave = api("boss").delete(f"{ORG}members/boss/")
    assert leave.status_code == 400
    assert detail(leave) == "An organisation must keep at least one owner."
    demote = api("boss").patch(f"{ORG}members/boss/", {"role": "admin"}, format="json")
    assert demote.status_code == 400
    # With a second owner, the first may go.
    promote = api("boss").patch(f"{ORG}members/admin/", {"role": "owner"}, format="json")
    assert promote.status_code == 200
    assert api("boss").delete(f"{ORG}members/boss/").status_code == 204
    assert not acme.members.filter(user=people["boss"]).exists()


def test_a_member_may_leave(api, people, acme):
    assert api("plain").delete(f"{ORG}members/plain/").status_code == 204
    assert not acme.members.filter(user=people["plain"]).exists()
    # ... but not remove others.
    assert api("stranger").delete(f"{ORG}members/admin/").status_code == 403


# -- teams and channels --------------------------------------------------------------------


@pytest.fixture
def vault(api, people, acme):
    """acme's private channel; team "devs" (plain) maintains it."""
    created = api("admin").post(
        "/api/v1/channels/", {"name": "acme-vault", "private": True, "organization": "acme"},
        format="json",
    )  # fmt: skip
    assert created.status_code == 201, created.content
    assert created.json()["organization"] == "acme"
    assert created.json()["role"] == "owner"
    team = api("admin").post(f"{ORG}teams/", {"name": "devs"}, format="json")
    assert team.status_code == 201, team.content
    assert api("admin").put(f"{ORG}teams/devs/members/plain/").status_code == 200
    grant = api("admin").put(
        f"{ORG}teams/devs/channels/acme-vault/", {"role": "maintainer"}, format="json"
    )
    assert grant.status_code == 200, grant.content
    assert grant.json()["channels"] == [{"channel": "acme-vault", "role": "maintainer"}]
    return created.json()


def test_only_owners_and_admins_create_channels_in_the_organisation(api, acme):
    body = {"name": "plain-made", "organization": "acme"}
    refused = api("plain").post("/api/v1/channels/", body, format="json")
    assert refused.status_code == 403
    assert detail(refused) == "You may not create channels in 'acme' as member."
    missing = api("plain").post(
        "/api/v1/channels/", {**body, "organization": "nope"}, format="json"
    )
    assert missing.status_code == 400
    assert "Organisation 'nope' not found." in str(missing.json())


@pytest.mark.django_db(transaction=True)
def test_a_team_member_downloads_from_a_private_org_channel_by_the_conda_routes(
    api, people, vault, packages, client_for
):
    path = packages.make("vaulted", "1.0")
    assert upload(api("boss"), "acme-vault", path).status_code == 201
    wait_for_index(Channel.objects.get(name="acme-vault"), "noarch")
    _, secret = ApiToken.create_for(people["plain"], "conda", read_only=True)

    for url in (f"/acme-vault/noarch/{path.name}", f"/t/{secret}/acme-vault/noarch/{path.name}"):
        response = client_for(secret=secret).get(url)
        assert response.status_code == 200, url
        assert b"".join(response.streaming_content) == path.read_bytes()
    assert client_for(secret=secret).get("/acme-vault/noarch/repodata.json").status_code == 200
    # As a maintainer, plain may upload (with a full token) ...
    assert upload(api("plain"), "acme-vault", packages.make("other", "1.0")).status_code == 201
    # ... and someone in the organisation but not in the team reads nothing.
    join(Organization.objects.get(name="acme"), people["dev"], OrgRole.MEMBER, people["boss"])
    assert api("dev").get(f"/acme-vault/noarch/{path.name}").status_code == 404


def test_the_highest_of_direct_and_team_roles_wins(api, people, vault):
    # plain: team maintainer; a direct "member" role does not lower it ...
    assert api("admin").post(
        "/api/v1/channels/acme-vault/members/", {"username": "plain", "role": "member"},
        format="json",
    ).status_code == 201  # fmt: skip
    assert api("plain").get("/api/v1/channels/acme-vault/").json()["role"] == "maintainer"
    # ... a direct "owner" role raises it.
    api("admin").patch(
        "/api/v1/channels/acme-vault/members/plain/", {"role": "owner"}, format="json"
    )
    assert api("plain").get("/api/v1/channels/acme-vault/").json()["role"] == "owner"


def test_team_members_must_be_in_the_organisation(api, vault):
    refused = api("admin").put(f"{ORG}teams/devs/members/stranger/")
    assert refused.status_code == 400
    assert detail(refused) == "stranger is not a member of 'acme'; invite them first."
    assert api("admin").put(f"{ORG}teams/devs/members/nobody/").status_code == 404


def test_teams_get_roles_only_on_channels_of_their_organisation(api, people, vault):
    create_channel(people["admin"], "admins-own")
    refused = api("admin").put(
        f"{ORG}teams/devs/channels/admins-own/", {"role": "member"}, format="json"
    )
    assert refused.status_code == 404
    assert detail(refused) == "Organisation 'acme' has no channel 'admins-own'."


def test_team_listings_hide_private_channels_from_members_without_access(api, people, acme, vault):
    organizations.create_team(acme, "readers", people["boss"])
    organizations.add_team_member(acme.teams.get(name="readers"), people["plain"], people["boss"])
    join(acme, people["dev"], OrgRole.MEMBER, people["boss"])
    seen_by_dev = api("dev").get(f"{ORG}teams/devs/").json()
    assert seen_by_dev["members"] == ["plain"]
    assert seen_by_dev["channels"] == []
    assert api("plain").get(f"{ORG}teams/devs/").json()["channels"] == [
        {"channel": "acme-vault", "role": "maintainer"}
    ]
    assert api("stranger").get(f"{ORG}teams/devs/").status_code == 403
    # The organisation's channel list follows the same policy.
    assert api("dev").get(f"{ORG}channels/").json()["results"] == []
    assert [c["name"] for c in api("plain").get(f"{ORG}channels/").json()["results"]] == [
        "acme-vault"
    ]


def test_removing_from_the_organisation_ends_team_access(api, people, vault):
    assert api("plain").get("/api/v1/channels/acme-vault/").status_code == 200

    assert api("admin").delete(f"{ORG}members/plain/").status_code == 204

    assert api("plain").get("/api/v1/channels/acme-vault/").status_code == 404
    assert api("admin").get(f"{ORG}teams/devs/").json()["members"] == []


def test_team_changes_are_for_owners_and_admins(api, vault):
    assert api("plain").post(f"{ORG}teams/", {"name": "mine"}, format="json").status_code == 403
    assert api("plain").put(f"{ORG}teams/devs/members/admin/").status_code == 403
    renamed = api("admin").patch(f"{ORG}teams/devs/", {"name": "builders"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "builders"
    clash = api("admin").post(f"{ORG}teams/", {"name": "builders"}, format="json")
    assert clash.status_code == 400
    assert detail(clash) == "Organisation 'acme' already has a team 'builders'."
    assert api("admin").delete(f"{ORG}teams/builders/channels/acme-vault/").status_code == 204
    assert api("plain").get("/api/v1/channels/acme-vault/").status_code == 404
    assert api("admin").delete(f"{ORG}teams/builders/").status_code == 204


# -- transfers -----------------------------------------------------------------------------


def transfer(client, channel, organization="acme"):
    return client.post(
        f"/api/v1/channels/{channel}/transfer/", {"organization": organization}, format="json"
    )


def test_a_transfer_needs_rights_on_the_channel_and_in_the_organisation(api, people, acme):
    channel = create_channel(people["plain"], "plain-tools", private=True)
    Membership.objects.create(channel=channel, user=people["admin"], role=Role.MAINTAINER)

    # plain owns the channel but is only a member of acme.
    refused = transfer(api("plain"), "plain-tools")
    assert refused.status_code == 403
    assert detail(refused) == "You may not create channels in 'acme' as member."
    # admin administers acme but only maintains the channel.
    assert transfer(api("admin"), "plain-tools").status_code == 403
    # A stranger does not see the private channel at all.
    assert transfer(api("stranger"), "plain-tools").status_code == 404

    OrganizationMember.objects.filter(user=people["plain"]).update(role=OrgRole.ADMIN)
    moved = transfer(api("plain"), "plain-tools")

    assert moved.status_code == 200, moved.content
    assert moved.json()["organization"] == "acme"
    # The channel keeps its members; the organisation's owners own it now too.
    assert set(channel.memberships.values_list("user__username", "role")) == {
        ("plain", "owner"), ("admin", "maintainer"),
    }  # fmt: skip
    assert api("boss").get("/api/v1/channels/plain-tools/").json()["role"] == "owner"
    again = transfer(api("plain"), "plain-tools")
    assert again.status_code == 400
    assert "already belongs to 'acme'" in str(again.json())
    assert transfer(api("plain"), "plain-tools", "nope").status_code == 400
