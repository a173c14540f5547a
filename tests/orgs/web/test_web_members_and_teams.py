"""An organisation's members and teams pages: roles read by members, changed by owners
and admins (admins never touching owners), members leaving, and teams that open channels
to their members."""

import pytest

from accounts.models import OrgRole
from channels_app.lifecycle import create_channel
from channels_app.models import TeamChannel

from .pages import messages_of, role_in, text

pytestmark = pytest.mark.django_db


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

    assert response.status_code == 400
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
