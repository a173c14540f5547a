"""The organisation pages: my organisations, a new organisation, an organisation's page and
settings, and the organisation parts of the channel pages — every page with every kind of
visitor."""

import pytest

from accounts.models import Organization, OrgRole
from channels_app.lifecycle import create_channel
from channels_app.models import Channel, Membership, Role
from channels_app.orgs import operations as organizations

from .pages import messages_of, role_in, text

pytestmark = pytest.mark.django_db


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

    assert response.status_code == 400
    assert message in text(response)
    assert not Organization.objects.filter(created_by__username="stranger").exists()


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
    assert response.status_code == 400 and "Select a valid choice" in text(response)
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
