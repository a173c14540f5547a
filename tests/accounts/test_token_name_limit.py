"""The length limit of a token's name, on every path that creates or renames a token: the
REST API, the API keys page, ``manage.py create_token`` and the admin. One character over
is refused naming the limit and no token is made or changed; exactly at the limit is
accepted."""

import io

import pytest
from django.core.management import CommandError, call_command

from accounts.models import ApiToken

from ..admin import form_data
from ..forms import browser, shown_errors, submit, too_long, too_long_for_the_api

pytestmark = pytest.mark.django_db

LIMIT = ApiToken._meta.get_field("name").max_length


def name_of(length):
    return "k" * length


def names_of(user):
    return set(ApiToken.objects.filter(user=user).values_list("name", flat=True))


def test_the_name_limit_is_bounded_and_generous():
    assert 100 <= LIMIT <= 200


def test_rest_refuses_a_token_name_over_the_limit(client_for, users):
    api = client_for("owner")
    before = names_of(users["owner"])

    refused = api.post("/api/v1/tokens/", {"name": name_of(LIMIT + 1)}, format="json")
    unchanged = names_of(users["owner"])
    accepted = api.post("/api/v1/tokens/", {"name": name_of(LIMIT)}, format="json")

    assert refused.status_code == 400
    assert refused.json() == {"name": [too_long_for_the_api(LIMIT)]}
    assert unchanged == before
    assert accepted.status_code == 201
    assert names_of(users["owner"]) == before | {name_of(LIMIT)}


def test_the_keys_page_refuses_a_token_name_over_the_limit(users):
    client = browser(users["owner"])

    refused = submit(client, "/settings/keys/", {"name": name_of(LIMIT + 1), "expiry": "never"})
    unchanged = names_of(users["owner"])
    accepted = submit(client, "/settings/keys/", {"name": name_of(LIMIT), "expiry": "never"})

    assert refused.status_code == 400
    assert shown_errors(refused, "name") == [too_long(LIMIT)]
    assert unchanged == set()
    assert accepted.status_code == 200 and accepted.context["created"] is not None
    assert names_of(users["owner"]) == {name_of(LIMIT)}


def test_the_command_refuses_a_token_name_over_the_limit(users):
    out = io.StringIO()

    with pytest.raises(CommandError) as refused:
        call_command("create_token", "owner", "--name", name_of(LIMIT + 1), stdout=out)
    unchanged = names_of(users["owner"])
    call_command("create_token", "owner", "--name", name_of(LIMIT), stdout=out)

    assert str(refused.value) == (
        f"A token name has at most {LIMIT} characters; this one has {LIMIT + 1}."
    )
    assert unchanged == set()
    assert names_of(users["owner"]) == {name_of(LIMIT)}
    assert out.getvalue().startswith("wharf-")  # the secret, printed once


def test_the_command_refuses_an_empty_token_name(users):
    with pytest.raises(CommandError) as refused:
        call_command("create_token", "owner", "--name", "  ", stdout=io.StringIO())

    assert "Give the token a name" in str(refused.value)
    assert names_of(users["owner"]) == set()


def test_the_admin_refuses_a_token_name_over_the_limit(django_user_model, users):
    root = django_user_model.objects.create_superuser("root", "root@example.org", "pw-root")
    token, _ = ApiToken.create_for(users["owner"], "laptop")
    client = browser(root)
    url = f"/admin/accounts/apitoken/{token.pk}/change/"
    page = client.get(url)

    refused = submit(client, url, {**form_data(page), "name": name_of(LIMIT + 1)}, page=page)
    unchanged = names_of(users["owner"])
    accepted = submit(client, url, {**form_data(page), "name": name_of(LIMIT)}, page=page)

    # The admin shows its form again with the error, as Django's admin does (a 200).
    assert refused.status_code == 200
    assert shown_errors(refused, "name", form="adminform") == [too_long(LIMIT)]
    assert unchanged == {"laptop"}
    assert accepted.status_code == 302
    assert names_of(users["owner"]) == {name_of(LIMIT)}
