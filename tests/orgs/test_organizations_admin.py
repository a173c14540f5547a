"""The Django admin for organisation owners and admins (the organisation policy of the
pages and the API): their organisations, members, invitations, teams and the teams'
channel roles; nobody else's. Deleting an organisation and touching owners stay the
owners'."""

import pytest

from accounts.models import Invitation, Organization, OrgRole, TeamMember
from channels_app.models import Role, TeamChannel
from channels_app.orgs import operations as organizations

from ..admin import form_data, listed, signed_in

pytestmark = pytest.mark.django_db

ORGS = "/admin/accounts/organization/"
INVITATIONS = "/admin/accounts/invitation/"
TEAMS = "/admin/accounts/team/"


@pytest.fixture
def people(django_user_model):
    return {
        name: django_user_model.objects.create_user(name, f"{name}@example.org", "pw-" + name)
        for name in ("boss", "admin", "plain", "other", "newbie")
    }


def join(organization, user, role, by):
    organizations.accept(organizations.invite(organization, user.username, role, by), user)


@pytest.fixture
def acme(people):
    org = organizations.create_organization(people["boss"], "acme")
    join(org, people["admin"], OrgRole.ADMIN, people["boss"])
    join(org, people["plain"], OrgRole.MEMBER, people["boss"])
    return org


@pytest.fixture
def globex(people):
    """Someone else's organisation."""
    return organizations.create_organization(people["other"], "globex")


def models_of(response):
    return {m["object_name"] for app in response.context["app_list"] for m in app["models"]}


def test_it_opens_the_admin_to_an_organisation_owner_who_is_not_staff(client, people, acme):
    assert not people["boss"].is_staff

    response = signed_in(client, people["boss"]).get("/admin/")

    assert response.status_code == 200
    assert models_of(response) == {"Organization", "Invitation", "Team"}


@pytest.mark.parametrize("who", ["plain", "newbie"])
def test_it_refuses_the_admin_to_those_who_manage_no_organisation(client, people, acme, who):
    response = signed_in(client, people[who]).get("/admin/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_it_lets_an_organisation_admin_manage_everything_but_deleting(client, people, acme, globex):
    assert not people["admin"].is_staff
    signed_in(client, people["admin"])

    home = client.get("/admin/")
    assert home.status_code == 200
    assert models_of(home) == {"Organization", "Invitation", "Team"}
    assert listed(client, ORGS) == ["acme"]
    url = f"{ORGS}{acme.pk}/change/"
    data = form_data(client.get(url))
    changed = client.post(url, {**data, "display_name": "Acme Inc."})
    assert changed.status_code == 302
    acme.refresh_from_db()
    assert acme.display_name == "Acme Inc."
    invite = {"organization": acme.pk, "invitee_name": "newbie", "role": "member"}
    assert client.post(f"{INVITATIONS}add/", invite).status_code == 302
    assert Invitation.objects.pending().get(organization=acme).user == people["newbie"]
    team = {"organization": acme.pk, "name": "ops", "description": ""}
    assert client.post(f"{TEAMS}add/", team).status_code == 302
    assert listed(client, TEAMS) == ["acme/ops"]
    # Owners are the owners' to make, change and remove, on the form as by the rules.
    plain_row = next(key for key, value in data.items() if value == OrgRole.MEMBER)
    promoted = client.post(url, {**data, plain_row: OrgRole.OWNER})
    assert promoted.status_code == 200
    assert "Only owners of &#x27;acme&#x27; may make, change or remove owners." in (
        promoted.content.decode()
    )
    assert acme.role_of(people["plain"]) == OrgRole.MEMBER
    # Deleting is the owners' alone, as on the pages and in the API.
    assert b'value="delete_selected"' not in client.get(ORGS).content
    assert client.get(f"{ORGS}{acme.pk}/delete/").status_code == 403
    assert client.post(f"{ORGS}{acme.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Organization.objects.filter(pk=acme.pk).exists()
    assert client.get(f"{ORGS}{globex.pk}/change/").status_code == 302
    assert b'value="delete_selected"' in signed_in(client, people["boss"]).get(ORGS).content


def test_it_lists_only_the_organisations_an_owner_owns(client, people, acme, globex):
    signed_in(client, people["boss"])

    assert listed(client, ORGS) == ["acme"]
    response = client.get(f"{ORGS}{globex.pk}/change/")
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert listed(client, TEAMS) == []
    organizations.create_team(globex, "theirs", people["other"])
    organizations.create_team(acme, "ours", people["boss"])
    assert listed(client, TEAMS) == ["acme/ours"]


def test_the_organisation_page_shows_members_invitations_and_teams(client, people, acme):
    organizations.invite(acme, "newbie", OrgRole.MEMBER, people["boss"])
    organizations.create_team(acme, "devs", people["boss"])
    signed_in(client, people["boss"])

    response = client.get(f"{ORGS}{acme.pk}/change/")

    assert response.status_code == 200
    inlines = {
        inline.formset.model.__name__: inline.formset
        for inline in response.context["inline_admin_formsets"]
    }
    assert [str(f.instance.user) for f in inlines["OrganizationMember"].forms] == [
        "admin", "boss", "plain",
    ]  # fmt: skip
    assert [f.instance.invitee for f in inlines["Invitation"].forms] == ["newbie"]
    assert [f.instance.name for f in inlines["Team"].forms] == ["devs"]


def test_it_keeps_an_owner_when_roles_change_on_the_organisation_page(client, people, acme):
    signed_in(client, people["boss"])
    url = f"{ORGS}{acme.pk}/change/"
    data = form_data(client.get(url))
    owner_row = next(key for key, value in data.items() if value == OrgRole.OWNER)

    refused = client.post(url, {**data, owner_row: OrgRole.ADMIN})

    assert refused.status_code == 200
    assert "An organisation must keep at least one owner." in refused.content.decode()
    assert acme.role_of(people["boss"]) == OrgRole.OWNER
    # Promoting admin and demoting boss in one save hands the organisation over.
    admin_row = next(key for key, value in data.items() if value == OrgRole.ADMIN)
    handed = client.post(url, {**data, owner_row: OrgRole.ADMIN, admin_row: OrgRole.OWNER})
    assert handed.status_code == 302
    acme.__dict__.pop("_org_roles", None)
    assert (acme.role_of(people["boss"]), acme.role_of(people["admin"])) == ("admin", "owner")


def test_it_invites_by_exact_name_and_never_adds_a_member(client, people, acme, globex):
    signed_in(client, people["boss"])

    def send(organization, name):
        form = {"organization": organization.pk, "invitee_name": name, "role": "member"}
        return client.post(f"{INVITATIONS}add/", form)

    sent = send(acme, "newbie")

    assert sent.status_code == 302
    invitation = Invitation.objects.get(organization=acme, user=people["newbie"])
    assert invitation.is_pending
    assert not acme.members.filter(user=people["newbie"]).exists()
    unknown = send(acme, "newb")
    assert unknown.status_code == 200
    assert "No user with username &#x27;newb&#x27;." in unknown.content.decode()
    elsewhere = send(globex, "plain")
    assert elsewhere.status_code == 200
    assert not Invitation.objects.filter(organization=globex).exists()

    chosen = {"action": "withdraw", "_selected_action": [invitation.pk]}
    assert client.post(INVITATIONS, chosen).status_code == 302
    invitation.refresh_from_db()
    assert invitation.status == "withdrawn"


def test_it_gives_a_team_members_and_channel_roles(client, people, acme):
    channel = organizations.create_channel(acme, "acme-vault", people["boss"], private=True)
    team = organizations.create_team(acme, "devs", people["boss"])
    signed_in(client, people["boss"])
    url = f"{TEAMS}{team.pk}/change/"
    page = client.get(url)
    offered = {
        inline.formset.model.__name__: inline.formset.form.base_fields
        for inline in page.context["inline_admin_formsets"]
    }
    assert set(offered["TeamMember"]["user"].queryset) == {
        people["boss"],
        people["admin"],
        people["plain"],
    }
    assert list(offered["TeamChannel"]["channel"].queryset) == [channel]
    data = {
        **form_data(page),
        "members-TOTAL_FORMS": "1", "members-0-user": people["plain"].pk,
        "channel_roles-TOTAL_FORMS": "1", "channel_roles-0-channel": channel.pk,
        "channel_roles-0-role": Role.MAINTAINER,
    }  # fmt: skip

    response = client.post(url, data)

    assert response.status_code == 302, response.context and response.context["errors"]
    assert TeamMember.objects.get(team=team).user == people["plain"]
    assert TeamChannel.objects.get(team=team).role == Role.MAINTAINER
    channel.__dict__.pop("_roles", None)
    assert channel.role_of(people["plain"]) == Role.MAINTAINER


def test_it_refuses_to_delete_an_organisation_that_owns_channels(client, people, acme):
    organizations.create_channel(acme, "acme-tools", people["boss"])
    signed_in(client, people["boss"])

    response = client.post(f"{ORGS}{acme.pk}/delete/", {"post": "yes"})

    assert response.status_code == 200
    assert "acme-tools" in response.content.decode()
    assert Organization.objects.filter(pk=acme.pk).exists()


def test_it_shows_a_superuser_every_organisation(client, django_user_model, acme, globex):
    root = django_user_model.objects.create_superuser("root", "root@example.org", "pw")

    assert sorted(listed(signed_in(client, root), ORGS)) == ["acme", "globex"]
