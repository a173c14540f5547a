"""The organisation pages: my organisations and invitations, an organisation's page,
members, teams and settings, and the organisation parts of the channel pages — every page
with every kind of visitor."""

from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts import organizations
from accounts.models import Invitation, Organization, OrgRole
from channels_app.lifecycle import create_channel
from channels_app.models import Channel, Membership, Role, TeamChannel

from ..test_organizations import join

pytestmark = pytest.mark.django_db


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


def text(response):
    return response.content.decode()


def messages_of(response):
    return [str(message) for message in response.context["messages"]]


def role_in(organization, user):
    return organization.members.filter(user=user).values_list("role", flat=True).first()


# -- every page, every visitor ------------------------------------------------------------

PAGES = {
    "organisation": "/orgs/acme/",
    "members": "/orgs/acme/members/",
    "teams": "/orgs/acme/teams/",
    "team": "/orgs/acme/teams/devs/",
    "settings": "/orgs/acme/settings/",
}
# Anonymous visitors are sent to sign in; signed-in outsiders are told what they lack.
MEMBERS_ONLY = {"anonymous": 302, "stranger": 403}
EXPECTED = {
    "boss": {},
    "admin": {},
    "dev": {"settings": 403},
    "plain": {"settings": 403},
    "stranger": {name: 403 for name in PAGES if name != "organisation"},
    "anonymous": {name: 302 for name in PAGES if name != "organisation"},
}


@pytest.mark.parametrize("who", list(EXPECTED))
def test_every_page_answers_each_visitor_by_their_role(web, acme, who):
    client = web(None if who == "anonymous" else who)

    answers = {name: client.get(path).status_code for name, path in PAGES.items()}

    assert answers == {name: EXPECTED[who].get(name, 200) for name in PAGES}


def test_members_pages_send_anonymous_visitors_to_sign_in(web, acme):
    response = web().get("/orgs/acme/members/")

    assert response["Location"].startswith("/accounts/login/?next=/orgs/acme/members/")


def test_an_outsider_is_told_the_members_are_for_members(web, acme):
    response = web("stranger").get("/orgs/acme/teams/devs/")

    assert response.status_code == 403
    assert "Only members of &#x27;acme&#x27; see its members and teams." in text(response)


def test_a_missing_organisation_or_team_is_404(web, acme):
    assert web("stranger").get("/orgs/nope/").status_code == 404
    assert web("boss").get("/orgs/nope/members/").status_code == 404
    assert web("boss").get("/orgs/acme/teams/nope/").status_code == 404


@pytest.mark.parametrize(
    ("who", "sees_vault", "sees_people"),
    [
        ("boss", True, True),
        ("admin", True, True),
        ("dev", True, True),  # by team
        ("plain", False, True),  # a member of the organisation alone reads no private channel
        ("stranger", False, False),
        (None, False, False),
    ],
)
def test_the_organisation_page_shows_readable_channels_and_people_to_members(
    web, acme, who, sees_vault, sees_people
):
    page = text(web(who).get("/orgs/acme/"))

    assert 'href="/acme-tools/"' in page and "Rockets" in page
    assert ("acme-vault" in page) is sees_vault
    assert ('id="people-heading"' in page) is sees_people
    assert ('href="/orgs/acme/teams/devs/"' in page) is sees_people
    assert ('href="/orgs/acme/members/"' in page) is sees_people


def test_an_outsider_sees_the_same_organisation_page_as_an_anonymous_visitor_but_the_bar(web, acme):
    """Nothing about members, teams or the private channel: only the top bar differs."""
    page = text(web("stranger").get("/orgs/acme/"))
    main = page[page.index('<main id="main"') : page.index("</main>")]

    for word in ("boss", "admin", "plain", "devs", "acme-vault", "Members", "Teams"):
        assert word not in main


# -- my organisations, new organisation ---------------------------------------------------


def test_my_organisations_need_a_signed_in_user(web):
    for path in ("/orgs/", "/orgs/new/"):
        response = web().get(path)
        assert response.status_code == 302
        assert response["Location"].startswith(f"/accounts/login/?next={path}")


def test_my_organisations_list_mine_with_my_role(web, acme, people):
    none = text(web("stranger").get("/orgs/"))
    organizations.create_organization(people["stranger"], "elsewhere")

    page = text(web("admin").get("/orgs/"))

    assert 'href="/orgs/acme/"' in page and "<td>admin</td>" in page
    assert "elsewhere" not in page
    assert "You are not a member of any organisation yet." in none


def test_it_creates_an_organisation_whose_creator_is_its_owner(web, people):
    response = web("plain").post(
        "/orgs/new/", {"name": "zeta", "display_name": "Zeta Labs", "description": "Hi"}
    )

    assert response.status_code == 302 and response["Location"] == "/orgs/zeta/"
    zeta = Organization.objects.get(name="zeta")
    assert zeta.display_name == "Zeta Labs" and zeta.description == "Hi"
    assert role_in(zeta, people["plain"]) == OrgRole.OWNER
    assert "You are owner" in text(web("plain").get("/orgs/zeta/"))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Bad Name", "lowercase letters"),
        ("admin", "reserved"),
        ("new", "reserved"),
        ("acme", "already exists"),
        ("", "required"),
    ],
)
def test_new_organisation_refuses_bad_names(web, acme, name, message):
    response = web("stranger").post("/orgs/new/", {"name": name})

    assert response.status_code == 200
    assert message in text(response)
    assert not Organization.objects.filter(created_by__username="stranger").exists()


# -- invitations --------------------------------------------------------------------------


def test_an_invitation_by_username_waits_in_the_invitees_list_until_accepted(web, acme, people):
    admin = web("admin")
    response = admin.post(
        "/orgs/acme/members/", {"action": "invite", "identifier": "stranger", "role": "member"}
    )
    assert response.status_code == 302
    assert not acme.members.filter(user=people["stranger"]).exists()  # never added silently
    members_page = text(admin.get("/orgs/acme/members/"))
    assert "Pending invitations" in members_page and "<td>stranger</td>" in members_page

    stranger = web("stranger")
    invitations = text(stranger.get("/orgs/"))
    invitation = Invitation.objects.get(user=people["stranger"])
    assert "<strong>acme</strong> invites you as <strong>member</strong>" in invitations
    assert f'action="/orgs/invitations/{invitation.pk}/accept/"' in invitations
    # The top bar counts it on every page.
    assert '<span class="badge">1</span>' in text(stranger.get("/channels/"))

    response = stranger.post(f"/orgs/invitations/{invitation.pk}/accept/")

    assert response.status_code == 302 and response["Location"] == "/orgs/acme/"
    assert role_in(acme, people["stranger"]) == OrgRole.MEMBER
    assert stranger.get("/orgs/acme/members/").status_code == 200
    after = text(stranger.get("/orgs/"))
    assert "invites you" not in after and '<span class="badge">' not in after


def test_an_invitation_by_email_reaches_someone_who_signs_up_later(
    web, acme, people, django_user_model, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = web("boss").post(
            "/orgs/acme/members/",
            {"action": "invite", "identifier": "Newbie@Example.org", "role": "admin"},
        )
    assert response.status_code == 302
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["newbie@example.org"]
    assert "/orgs/" in mail.outbox[0].body
    assert "newbie@example.org" in text(web("boss").get("/orgs/acme/members/"))

    newbie = django_user_model.objects.create_user("newbie", "newbie@example.org", "pw")
    client = Client()
    client.force_login(newbie)
    invitation = Invitation.objects.get(email="newbie@example.org")
    invited = "<strong>acme</strong> invites you as <strong>admin</strong>"
    # Until the address is verified, whoever signed up with it cannot take the invitation.
    EmailAddress.objects.create(user=newbie, email="newbie@example.org", verified=False)
    waiting = text(client.get("/orgs/"))
    assert invited not in waiting
    assert "Invitations sent to newbie@example.org appear here once you" in waiting
    assert client.post(f"/orgs/invitations/{invitation.pk}/accept/").status_code == 404
    EmailAddress.objects.filter(user=newbie).update(verified=True)
    confirmed = text(client.get("/orgs/"))
    assert invited in confirmed and "data-unconfirmed" not in confirmed
    client.post(f"/orgs/invitations/{invitation.pk}/accept/")

    assert role_in(acme, newbie) == OrgRole.ADMIN


@pytest.mark.parametrize(
    ("who", "identifier", "role", "message"),
    [
        ("admin", "ghost", "member", "No user with username &#x27;ghost&#x27;."),
        ("admin", "plain", "member", "plain is already a member of &#x27;acme&#x27;."),
        ("admin", "not-an@address", "member", "is not a valid e-mail address"),
        ("admin", "stranger", "owner", "Only owners of &#x27;acme&#x27; may invite owners."),
        ("boss", "stranger", "king", "Select a valid choice"),
        ("boss", "", "member", "This field is required."),
    ],
)
def test_the_invite_form_shows_why_an_invitation_is_refused(
    web, acme, who, identifier, role, message
):
    response = web(who).post(
        "/orgs/acme/members/", {"action": "invite", "identifier": identifier, "role": role}
    )

    assert response.status_code == 200
    assert message in text(response)
    assert not Invitation.objects.filter(accepted_at__isnull=True).exists()


def test_inviting_someone_twice_names_the_pending_invitation(web, acme):
    boss = web("boss")
    form = {"action": "invite", "identifier": "stranger", "role": "member"}
    boss.post("/orgs/acme/members/", form)

    response = boss.post("/orgs/acme/members/", form)

    assert "stranger already has a pending invitation to &#x27;acme&#x27;" in text(response)
    assert Invitation.objects.pending().count() == 1


def test_only_owners_and_admins_invite(web, acme):
    form = {"action": "invite", "identifier": "stranger", "role": "member"}

    assert web("plain").post("/orgs/acme/members/", form).status_code == 403
    assert web("stranger").post("/orgs/acme/members/", form).status_code == 403
    assert "Invite someone" not in text(web("plain").get("/orgs/acme/members/"))
    assert not Invitation.objects.pending().exists()


@pytest.fixture
def invitation(acme, people):
    return organizations.invite(acme, "stranger", OrgRole.MEMBER, people["admin"])


def test_declining_an_invitation_leaves_the_invitee_out(web, acme, people, invitation):
    client = web("stranger")

    response = client.post(f"/orgs/invitations/{invitation.pk}/decline/", follow=True)

    assert "Invitation to &#x27;acme&#x27; declined." in text(response)
    invitation.refresh_from_db()
    assert invitation.status == "declined"
    assert not acme.members.filter(user=people["stranger"]).exists()
    assert "invites you" not in text(client.get("/orgs/"))


def test_a_withdrawn_invitation_disappears_and_cannot_be_accepted(web, acme, people, invitation):
    admin = web("admin")
    response = admin.post(
        "/orgs/acme/members/", {"action": "withdraw", "invitation": invitation.pk}, follow=True
    )
    assert "Invitation of stranger withdrawn." in text(response)
    assert "No pending invitations." in text(response)

    client = web("stranger")
    assert "invites you" not in text(client.get("/orgs/"))
    response = client.post(f"/orgs/invitations/{invitation.pk}/accept/", follow=True)

    assert "This invitation was already withdrawn." in messages_of(response)
    assert not acme.members.filter(user=people["stranger"]).exists()


def test_a_member_may_not_withdraw_invitations(web, acme, invitation):
    response = web("plain").post(
        "/orgs/acme/members/", {"action": "withdraw", "invitation": invitation.pk}
    )

    assert response.status_code == 403
    assert Invitation.objects.get(pk=invitation.pk).is_pending


def test_an_expired_invitation_is_not_shown_nor_acceptable(web, acme, people, invitation):
    Invitation.objects.filter(pk=invitation.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    client = web("stranger")

    page = text(client.get("/orgs/"))
    response = client.post(f"/orgs/invitations/{invitation.pk}/accept/", follow=True)

    assert "invites you" not in page and '<span class="badge">' not in page
    assert any("This invitation expired on" in m for m in messages_of(response))
    assert not acme.members.filter(user=people["stranger"]).exists()
    assert "No pending invitations." in text(web("admin").get("/orgs/acme/members/"))


def test_someone_elses_invitation_answers_as_a_missing_one(web, acme, people, invitation):
    response = web("plain").post(f"/orgs/invitations/{invitation.pk}/accept/")
    missing = web("plain").post("/orgs/invitations/987654/accept/")

    assert response.status_code == missing.status_code == 404
    assert Invitation.objects.get(pk=invitation.pk).is_pending


def test_answering_an_invitation_takes_a_post_with_the_csrf_token(web, acme, people, invitation):
    client = web("stranger", enforce_csrf_checks=True)
    for answer in ("accept", "decline"):
        path = f"/orgs/invitations/{invitation.pk}/{answer}/"
        assert client.get(path).status_code == 405
        assert client.post(path).status_code == 403
    assert Invitation.objects.get(pk=invitation.pk).is_pending

    page = text(client.get("/orgs/"))
    token = page.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
    response = client.post(
        f"/orgs/invitations/{invitation.pk}/accept/", {"csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    assert role_in(acme, people["stranger"]) == OrgRole.MEMBER


def test_every_change_on_the_members_page_needs_the_csrf_token(web, acme, people):
    client = web("boss", enforce_csrf_checks=True)
    plain = acme.members.get(user=people["plain"])

    response = client.post("/orgs/acme/members/", {"action": "remove", "member": plain.pk})

    assert response.status_code == 403
    assert role_in(acme, people["plain"]) == OrgRole.MEMBER


# -- members ------------------------------------------------------------------------------


def test_members_see_roles_read_only(web, acme):
    page = text(web("plain").get("/orgs/acme/members/"))

    assert "<td>boss</td>" in page and "owner" in page
    assert "Change role" not in page and "Remove</button>" not in page
    assert "Pending invitations" not in page
    assert ">Leave</button>" in page


def test_owners_and_admins_change_roles_and_remove_members(web, acme, people):
    admin = web("admin")
    plain = acme.members.get(user=people["plain"])
    dev = acme.members.get(user=people["dev"])

    response = admin.post(
        "/orgs/acme/members/", {"action": "role", "member": plain.pk, "role": "admin"}, follow=True
    )
    assert "plain is now admin." in messages_of(response)
    response = admin.post(
        "/orgs/acme/members/", {"action": "remove", "member": dev.pk}, follow=True
    )

    assert "dev was removed." in messages_of(response)
    assert role_in(acme, people["plain"]) == OrgRole.ADMIN
    assert role_in(acme, people["dev"]) is None
    # Removed from the organisation, dev is out of its teams too: the vault is gone for them.
    assert web("dev").get("/acme-vault/").status_code == 404


def test_admins_cannot_touch_owners_and_are_told_so(web, acme, people):
    admin = web("admin")
    boss = acme.members.get(user=people["boss"])
    plain = acme.members.get(user=people["plain"])

    demote = admin.post(
        "/orgs/acme/members/", {"action": "role", "member": boss.pk, "role": "member"}, follow=True
    )
    remove = admin.post("/orgs/acme/members/", {"action": "remove", "member": boss.pk}, follow=True)
    promote = admin.post(
        "/orgs/acme/members/", {"action": "role", "member": plain.pk, "role": "owner"}, follow=True
    )

    assert messages_of(demote) == ["Only owners of 'acme' may make or change owners."]
    assert messages_of(remove) == ["Only owners of 'acme' may remove owners."]
    assert messages_of(promote) == ["Only owners of 'acme' may make or change owners."]
    assert role_in(acme, people["boss"]) == OrgRole.OWNER
    assert role_in(acme, people["plain"]) == OrgRole.MEMBER


def test_a_member_may_not_change_roles(web, acme, people):
    plain = acme.members.get(user=people["plain"])

    response = web("dev").post(
        "/orgs/acme/members/", {"action": "role", "member": plain.pk, "role": "admin"}
    )

    assert response.status_code == 403
    assert role_in(acme, people["plain"]) == OrgRole.MEMBER


def test_a_member_leaves_but_the_last_owner_cannot(web, acme, people):
    response = web("plain").post("/orgs/acme/members/", {"action": "leave"}, follow=True)
    assert "You left 'acme'." in messages_of(response)
    assert role_in(acme, people["plain"]) is None

    response = web("boss").post("/orgs/acme/members/", {"action": "leave"}, follow=True)

    assert messages_of(response) == ["An organisation must keep at least one owner."]
    assert role_in(acme, people["boss"]) == OrgRole.OWNER


# -- teams --------------------------------------------------------------------------------


def test_an_admin_builds_a_team_that_opens_a_private_channel_to_its_members(web, acme, people):
    admin = web("admin")
    assert web("plain").get("/acme-vault/").status_code == 404

    response = admin.post("/orgs/acme/teams/", {"name": "ops", "description": "Operations"})
    assert response.status_code == 302 and response["Location"] == "/orgs/acme/teams/ops/"
    admin.post("/orgs/acme/teams/ops/", {"action": "add-member", "username": "plain"})
    response = admin.post(
        "/orgs/acme/teams/ops/",
        {"action": "set-channel", "channel": "acme-vault", "role": "member"},
        follow=True,
    )

    assert "Team 'ops' is member of 'acme-vault'." in messages_of(response)
    page = text(response)
    assert "<span>plain</span>" in page and 'href="/acme-vault/"' in page
    assert web("plain").get("/acme-vault/").status_code == 200
    assert "acme-vault" in text(web("plain").get("/orgs/acme/"))

    grant = TeamChannel.objects.get(team__name="ops")
    member = acme.teams.get(name="ops").members.get()
    admin.post("/orgs/acme/teams/ops/", {"action": "remove-channel", "grant": grant.pk})
    assert web("plain").get("/acme-vault/").status_code == 404
    admin.post("/orgs/acme/teams/ops/", {"action": "remove-member", "member": member.pk})
    assert not acme.teams.get(name="ops").members.exists()
    response = admin.post("/orgs/acme/teams/ops/", {"action": "delete"})
    assert response["Location"] == "/orgs/acme/teams/"
    assert not acme.teams.filter(name="ops").exists()


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"action": "add-member", "username": "stranger"}, "stranger is not a member of"),
        ({"action": "add-member", "username": "ghost"}, "No user with username &#x27;ghost&#x27;."),
        ({"action": "add-member", "username": "dev"}, "dev is already in team &#x27;devs&#x27;."),
        ({"action": "set-channel", "channel": "elsewhere", "role": "member"}, "valid choice"),
        ({"action": "set-channel", "channel": "acme-tools", "role": "king"}, "valid choice"),
    ],
)
def test_the_team_forms_show_why_a_change_is_refused(web, acme, people, form, message):
    create_channel(people["stranger"], "elsewhere")

    response = web("boss").post("/orgs/acme/teams/devs/", form)

    assert response.status_code == 200
    assert message in text(response)
    team = acme.teams.get(name="devs")
    assert list(team.members.values_list("user__username", flat=True)) == ["dev"]
    assert list(team.channel_roles.values_list("channel__name", flat=True)) == ["acme-vault"]


def test_a_team_name_is_checked(web, acme):
    taken = web("admin").post("/orgs/acme/teams/", {"name": "devs"})
    bad = web("admin").post("/orgs/acme/teams/", {"name": "Bad Team"})

    assert "Organisation &#x27;acme&#x27; already has a team &#x27;devs&#x27;." in text(taken)
    assert "A team name uses lowercase letters" in text(bad)
    assert acme.teams.count() == 1


def test_members_see_teams_read_only_and_only_channels_they_may_read(web, acme):
    dev_page = text(web("dev").get("/orgs/acme/teams/devs/"))
    plain_page = text(web("plain").get("/orgs/acme/teams/devs/"))

    assert 'href="/acme-vault/"' in dev_page and "maintainer" in dev_page
    assert "acme-vault" not in plain_page
    assert "<span>dev</span>" in plain_page
    for page in (dev_page, plain_page):
        assert "Add to team" not in page and "Delete team" not in page
    assert "Create team" not in text(web("plain").get("/orgs/acme/teams/"))


def test_members_may_not_change_teams(web, acme, people):
    for form in (
        {"action": "add-member", "username": "plain"},
        {"action": "delete"},
    ):
        assert web("dev").post("/orgs/acme/teams/devs/", form).status_code == 403
    assert web("dev").post("/orgs/acme/teams/", {"name": "mine"}).status_code == 403
    assert acme.teams.get(name="devs").members.count() == 1
    assert acme.teams.count() == 1


# -- settings and deletion ----------------------------------------------------------------


def test_owners_and_admins_change_the_description_only_owners_delete(web, acme):
    response = web("admin").post(
        "/orgs/acme/settings/", {"display_name": "ACME Corp", "description": "Space"}
    )
    assert response.status_code == 302
    acme.refresh_from_db()
    assert (acme.display_name, acme.description) == ("ACME Corp", "Space")

    assert "Delete organisation" not in text(web("admin").get("/orgs/acme/settings/"))
    assert "Delete organisation" in text(web("boss").get("/orgs/acme/settings/"))
    assert web("admin").post("/orgs/acme/delete/", {"confirm": "acme"}).status_code == 403
    assert Organization.objects.filter(name="acme").exists()


def test_an_organisation_with_channels_is_not_deleted(web, acme):
    wrong = web("boss").post("/orgs/acme/delete/", {"confirm": "acm"})
    owning = web("boss").post("/orgs/acme/delete/", {"confirm": "acme"})

    assert wrong.status_code == owning.status_code == 400
    assert "Type &#x27;acme&#x27; exactly to delete the organisation." in text(wrong)
    assert "still owns channels: acme-tools, acme-vault." in text(owning)
    assert Organization.objects.filter(name="acme").exists()


def test_an_owner_deletes_an_organisation_without_channels(web, people):
    organizations.create_organization(people["boss"], "empty")

    response = web("boss").post("/orgs/empty/delete/", {"confirm": "empty"})

    assert response.status_code == 302 and response["Location"] == "/orgs/"
    assert not Organization.objects.filter(name="empty").exists()


# -- channels of organisations -------------------------------------------------------------


def test_an_owner_transfers_a_channel_from_its_settings(web, acme, people):
    create_channel(people["admin"], "rover", private=True)
    client = web("admin")
    settings_page = text(client.get("/rover/settings/"))
    assert "Transfer to an organisation" in settings_page
    assert '<option value="acme">acme</option>' in settings_page

    response = client.post("/rover/transfer/", {"organization": "acme"}, follow=True)

    assert "Channel 'rover' now belongs to 'acme'." in messages_of(response)
    assert Channel.objects.get(name="rover").organization == acme
    assert 'Owned by the organisation <a href="/orgs/acme/">acme</a>' in text(client.get("/rover/"))
    # Its owners own it now, and its direct owner kept the membership.
    assert web("boss").get("/rover/settings/").status_code == 200
    assert Membership.objects.filter(channel__name="rover", user=people["admin"]).exists()


def test_a_channel_moves_only_to_an_organisation_its_owner_manages(web, acme, people):
    create_channel(people["plain"], "plains", private=False)

    settings_page = text(web("plain").get("/plains/settings/"))
    response = web("plain").post("/plains/transfer/", {"organization": "acme"}, follow=True)

    assert "Transfer to an organisation" not in settings_page
    assert any("Select a valid choice" in m for m in messages_of(response))
    assert Channel.objects.get(name="plains").organization is None


def test_only_the_channels_owners_transfer_it(web, acme, people):
    channel = create_channel(people["plain"], "plains", private=True)
    Membership.objects.create(channel=channel, user=people["admin"], role=Role.MAINTAINER)

    maintainer = web("admin").post("/plains/transfer/", {"organization": "acme"})
    outsider = web("boss").post("/plains/transfer/", {"organization": "acme"})

    assert maintainer.status_code == 403
    assert outsider.status_code == 404  # a private channel answers as a missing one
    assert Channel.objects.get(name="plains").organization is None


def test_a_new_channel_may_be_owned_by_an_organisation_i_manage(web, acme, people):
    client = web("admin")
    form = text(client.get("/channels/new/?owner=acme"))
    assert '<option value="acme" selected>acme</option>' in form

    response = client.post("/channels/new/", {"owner": "acme", "name": "acme-lab", "private": "on"})

    assert response.status_code == 302 and response["Location"] == "/acme-lab/"
    channel = Channel.objects.get(name="acme-lab")
    assert channel.organization == acme and channel.private
    assert not Membership.objects.filter(channel=channel).exists()
    assert web("boss").get("/acme-lab/settings/").status_code == 200
    assert "acme-lab" in text(web("admin").get("/orgs/acme/"))


def test_a_new_channel_cannot_go_to_an_organisation_i_do_not_manage(web, acme):
    client = web("plain")

    form = text(client.get("/channels/new/"))
    response = client.post("/channels/new/", {"owner": "acme", "name": "sneaky"})

    assert 'name="owner"' not in form
    assert response.status_code == 200 and "Select a valid choice" in text(response)
    assert not Channel.objects.filter(name="sneaky").exists()


def test_the_top_bar_links_organisations_for_signed_in_users(web, acme):
    assert 'href="/orgs/">Organisations' in text(web("plain").get("/"))
    assert 'href="/orgs/"' not in text(web().get("/"))


def test_the_invitation_badge_counts_by_account_and_verified_address_in_one_query(
    acme, people, django_assert_num_queries
):
    from allauth.account.models import EmailAddress

    stranger = people["stranger"]
    organizations.invite(acme, "stranger", OrgRole.MEMBER, people["boss"])
    other = organizations.create_organization(people["plain"], "other")
    organizations.invite(other, "second@example.org", OrgRole.MEMBER, people["plain"])
    EmailAddress.objects.create(user=stranger, email="Second@Example.org", verified=True)

    with django_assert_num_queries(1):
        count = organizations.count_pending_invitations(stranger)

    assert count == 2 == organizations.pending_invitations(stranger).count()


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/orgs/acme/members/", {"action": "remove", "member": "abc"}),
        ("/orgs/acme/members/", {"action": "remove", "member": "987654"}),
        ("/orgs/acme/members/", {"action": "withdraw", "invitation": "1; drop"}),
        ("/orgs/acme/teams/devs/", {"action": "remove-member", "member": ""}),
        ("/orgs/acme/teams/devs/", {"action": "remove-channel", "grant": "x"}),
    ],
)
def test_a_posted_id_that_names_nothing_is_404(web, acme, path, form):
    assert web("boss").post(path, form).status_code == 404
    assert acme.members.count() == 4


def test_a_role_that_does_not_exist_is_named(web, acme, people):
    plain = acme.members.get(user=people["plain"])

    response = web("boss").post(
        "/orgs/acme/members/", {"action": "role", "member": plain.pk, "role": "king"}, follow=True
    )

    assert messages_of(response) == ["Choose a role: owner, admin, member."]
    assert role_in(acme, people["plain"]) == OrgRole.MEMBER
