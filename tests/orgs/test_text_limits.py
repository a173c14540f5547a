"""Length limits of what people write about an organisation (its display name and
description) and a team (its name and description), through REST, the pages, the admin and
the domain functions. One character over the limit is a 400 (the admin: its form again)
naming the limit, and nothing stored changes; exactly at the limit is accepted."""

import pytest
from django.core.exceptions import ValidationError

from accounts.models import Organization, Team
from channels_app.orgs import operations as organizations

from ..admin import form_data
from ..forms import browser, shown_errors, submit, too_long, too_long_for_the_api

pytestmark = pytest.mark.django_db

ORG = "/api/v1/orgs/acme/"
ORGANIZATION_LIMITS = {
    field: Organization._meta.get_field(field).max_length
    for field in ("display_name", "description")
}
TEAM_LIMITS = {field: Team._meta.get_field(field).max_length for field in ("name", "description")}
organization_fields = pytest.mark.parametrize("field", ORGANIZATION_LIMITS)
team_fields = pytest.mark.parametrize("field", TEAM_LIMITS)


def text_of(length):
    # Lowercase letters: a valid team name too, when it is not too long.
    return "n" * length


@pytest.fixture
def acme(users):
    organization = organizations.create_organization(
        users["owner"], "acme", display_name="Acme", description="Rockets"
    )
    organizations.create_team(organization, "devs", users["owner"], description="Builders")
    return organization


def stored(organization):
    organization.refresh_from_db()
    return {field: getattr(organization, field) for field in ORGANIZATION_LIMITS}


def stored_team(organization):
    return list(organization.teams.values_list("name", "description"))


BEFORE = {"display_name": "Acme", "description": "Rockets"}
TEAM_BEFORE = [("devs", "Builders")]


def test_description_limits_are_bounded_and_generous():
    assert 2000 <= ORGANIZATION_LIMITS["description"] <= 10000
    assert 2000 <= TEAM_LIMITS["description"] <= 10000


# Organisations -------------------------------------------------------------------------------


@organization_fields
def test_rest_refuses_a_new_organisation_with_a_field_over_its_limit(client_for, users, field):
    limit = ORGANIZATION_LIMITS[field]
    api = client_for("owner")

    refused = api.post("/api/v1/orgs/", {"name": "wordy", field: text_of(limit + 1)}, format="json")
    accepted = api.post("/api/v1/orgs/", {"name": "full", field: text_of(limit)}, format="json")

    assert refused.status_code == 400
    assert refused.json() == {field: [too_long_for_the_api(limit)]}
    assert not Organization.objects.filter(name="wordy").exists()
    assert accepted.status_code == 201
    assert getattr(Organization.objects.get(name="full"), field) == text_of(limit)


@organization_fields
def test_rest_refuses_an_organisation_change_over_the_limit(client_for, acme, field):
    limit = ORGANIZATION_LIMITS[field]
    api = client_for("owner")

    refused = api.patch(ORG, {field: text_of(limit + 1)}, format="json")
    unchanged = stored(acme)
    accepted = api.patch(ORG, {field: text_of(limit)}, format="json")

    assert refused.status_code == 400
    assert refused.json() == {field: [too_long_for_the_api(limit)]}
    assert unchanged == BEFORE
    assert accepted.status_code == 200
    assert stored(acme) == {**BEFORE, field: text_of(limit)}


@organization_fields
def test_the_new_organisation_page_refuses_a_field_over_its_limit(users, field):
    limit = ORGANIZATION_LIMITS[field]
    client = browser(users["member"])

    refused = submit(client, "/orgs/new/", {"name": "wordy", field: text_of(limit + 1)})
    accepted = submit(client, "/orgs/new/", {"name": "full", field: text_of(limit)})

    assert refused.status_code == 400
    assert shown_errors(refused, field) == [too_long(limit)]
    assert not Organization.objects.filter(name="wordy").exists()
    assert accepted.status_code == 302
    assert getattr(Organization.objects.get(name="full"), field) == text_of(limit)


@organization_fields
def test_the_settings_page_refuses_a_field_over_its_limit(users, acme, field):
    limit = ORGANIZATION_LIMITS[field]
    client = browser(users["owner"])
    url = "/orgs/acme/settings/"

    refused = submit(client, url, {**BEFORE, field: text_of(limit + 1)})
    unchanged = stored(acme)
    accepted = submit(client, url, {**BEFORE, field: text_of(limit)})

    assert refused.status_code == 400
    assert shown_errors(refused, field) == [too_long(limit)]
    assert unchanged == BEFORE
    assert accepted.status_code == 302
    assert stored(acme) == {**BEFORE, field: text_of(limit)}


@organization_fields
def test_the_admin_refuses_an_organisation_field_over_its_limit(users, acme, field):
    limit = ORGANIZATION_LIMITS[field]
    client = browser(users["owner"])
    url = f"/admin/accounts/organization/{acme.pk}/change/"
    page = client.get(url)

    refused = submit(client, url, {**form_data(page), field: text_of(limit + 1)}, page=page)
    unchanged = stored(acme)
    accepted = submit(client, url, {**form_data(page), field: text_of(limit)}, page=page)

    # The admin shows its form again with the error, as Django's admin does (a 200).
    assert refused.status_code == 200
    assert shown_errors(refused, field, form="adminform") == [too_long(limit)]
    assert unchanged == BEFORE
    assert accepted.status_code == 302
    assert stored(acme) == {**BEFORE, field: text_of(limit)}


@organization_fields
def test_changing_an_organisation_refuses_a_field_over_its_limit(users, acme, field):
    """The domain function, which every route calls after its own form."""
    limit = ORGANIZATION_LIMITS[field]

    with pytest.raises(ValidationError) as refused:
        organizations.update_organization(acme, users["owner"], **{field: text_of(limit + 1)})

    assert refused.value.message_dict == {field: [too_long(limit)]}
    assert stored(Organization.objects.get(pk=acme.pk)) == BEFORE


# Teams ---------------------------------------------------------------------------------------


@team_fields
def test_rest_refuses_a_new_team_with_a_field_over_its_limit(client_for, acme, field):
    limit = TEAM_LIMITS[field]
    api = client_for("owner")
    base = {"name": "ops"}

    refused = api.post(f"{ORG}teams/", {**base, field: text_of(limit + 1)}, format="json")
    unchanged = stored_team(acme)
    accepted = api.post(f"{ORG}teams/", {**base, field: text_of(limit)}, format="json")

    assert refused.status_code == 400
    assert refused.json() == {field: [too_long_for_the_api(limit)]}
    assert unchanged == TEAM_BEFORE
    assert accepted.status_code == 201
    assert text_of(limit) in {value for row in stored_team(acme) for value in row}


@team_fields
def test_rest_refuses_a_team_change_over_the_limit(client_for, acme, field):
    limit = TEAM_LIMITS[field]
    api = client_for("owner")

    refused = api.patch(f"{ORG}teams/devs/", {field: text_of(limit + 1)}, format="json")
    unchanged = stored_team(acme)
    accepted = api.patch(f"{ORG}teams/devs/", {field: text_of(limit)}, format="json")

    assert refused.status_code == 400
    assert refused.json() == {field: [too_long_for_the_api(limit)]}
    assert unchanged == TEAM_BEFORE
    assert accepted.status_code == 200
    changed = {"name": (text_of(limit), "Builders"), "description": ("devs", text_of(limit))}
    assert stored_team(acme) == [changed[field]]


@team_fields
def test_the_teams_page_refuses_a_new_team_with_a_field_over_its_limit(users, acme, field):
    limit = TEAM_LIMITS[field]
    client = browser(users["owner"])
    url = "/orgs/acme/teams/"
    base = {"name": "ops", "description": ""}

    refused = submit(client, url, {**base, field: text_of(limit + 1)})
    unchanged = stored_team(acme)
    accepted = submit(client, url, {**base, field: text_of(limit)})

    assert refused.status_code == 400
    assert shown_errors(refused, field) == [too_long(limit)]
    assert unchanged == TEAM_BEFORE
    assert accepted.status_code == 302
    assert text_of(limit) in {value for row in stored_team(acme) for value in row}


@team_fields
def test_the_admin_refuses_a_team_field_over_its_limit(users, acme, field):
    limit = TEAM_LIMITS[field]
    client = browser(users["owner"])
    url = f"/admin/accounts/team/{acme.teams.get().pk}/change/"
    page = client.get(url)

    refused = submit(client, url, {**form_data(page), field: text_of(limit + 1)}, page=page)
    unchanged = stored_team(acme)
    accepted = submit(client, url, {**form_data(page), field: text_of(limit)}, page=page)

    assert refused.status_code == 200
    assert shown_errors(refused, field, form="adminform") == [too_long(limit)]
    assert unchanged == TEAM_BEFORE
    assert accepted.status_code == 302
    assert text_of(limit) in {value for row in stored_team(acme) for value in row}


def test_changing_a_team_refuses_a_description_over_the_limit(users, acme):
    """The domain function, which every route calls after its own form."""
    limit = TEAM_LIMITS["description"]

    with pytest.raises(ValidationError) as refused:
        organizations.update_team(acme.teams.get(), users["owner"], description=text_of(limit + 1))

    assert refused.value.message_dict == {"description": [too_long(limit)]}
    assert stored_team(acme) == TEAM_BEFORE
