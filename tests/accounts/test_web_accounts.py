"""Account web pages: sign-up, sign-in and password reset (allauth in Wharf's layout),
the profile and the API keys page."""

import re
import secrets
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.core import mail
from django.test import Client, override_settings
from django.utils import timezone

from accounts.authentication import failure_limit
from accounts.models import ApiToken
from channels_app.lifecycle import create_channel

pytestmark = pytest.mark.django_db

NEW_SECRET = re.compile(r'id="new-secret"[^>]*>\s*(wharf-[A-Za-z0-9-]+)\s*<')
PRIVATE_REPODATA = "/private-team/noarch/repodata.json"
GITHUB_APP = {"github": {"APPS": [{"client_id": "gh-id", "secret": "gh-secret", "key": ""}]}}


def signed_in(client, user):
    client.force_login(user)
    return client


def signed_in_user_id(client):
    return client.session.get("_auth_user_id")


def create_key(client, **data):
    """POST the key form; return the answer and the secret shown in it."""
    response = client.post("/settings/keys/", {"name": "ci", "expiry": "never", **data})
    assert response.status_code == 200, response.content
    found = NEW_SECRET.search(response.content.decode())
    assert found, response.content.decode()
    return response, found.group(1)


def bearer_get(secret, path):
    """GET with only the key as credential (no session)."""
    return Client().get(path, HTTP_AUTHORIZATION=f"Bearer {secret}")


class Inputs(HTMLParser):
    """Visible inputs of a page's forms and the ids labels point at."""

    def __init__(self):
        super().__init__()
        self.inputs, self.labelled = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("input", "select", "textarea") and attrs.get("type") not in (
            "hidden",
            "submit",
        ):
            self.inputs.append(attrs)
        if tag == "label" and attrs.get("for"):
            self.labelled.add(attrs["for"])


def unlabelled_inputs(response):
    parser = Inputs()
    parser.feed(response.content.decode())
    form_inputs = [i for i in parser.inputs if i.get("id") != "top-q"]
    assert form_inputs
    return [i.get("name") for i in form_inputs if i.get("id") not in parser.labelled]


# Sign-up, sign-in, sign-out, password reset


def test_it_signs_up_and_signs_in_the_new_user(client, django_user_model):
    response = client.post(
        "/accounts/signup/",
        {
            "email": "newcomer@example.org",
            "username": "newcomer",
            "password1": "a-long-enough-pass",
            "password2": "a-long-enough-pass",
        },
    )

    assert response.status_code == 302, response.content
    user = django_user_model.objects.get(username="newcomer")
    assert user.email == "newcomer@example.org"
    assert signed_in_user_id(client) == str(user.pk)


@pytest.mark.parametrize("login", ["owner", "owner@example.org"])
def test_it_signs_in_by_username_or_email(client, users, login):
    response = client.post("/accounts/login/", {"login": login, "password": "pw-owner"})

    assert response.status_code == 302, response.content
    assert signed_in_user_id(client) == str(users["owner"].pk)


def test_it_refuses_a_wrong_password(client, users):
    response = client.post("/accounts/login/", {"login": "owner", "password": "pw-member"})

    assert response.status_code == 200
    assert signed_in_user_id(client) is None


def test_it_signs_out_on_post(client, users):
    signed_in(client, users["owner"])
    confirmation = client.get("/accounts/logout/")
    assert confirmation.status_code == 200
    assert signed_in_user_id(client) is not None

    response = client.post("/accounts/logout/")

    assert response.status_code == 302
    assert signed_in_user_id(client) is None


def test_it_resets_a_forgotten_password_through_the_mailed_link(client, users):
    response = client.post("/accounts/password/reset/", {"email": "member@example.org"})
    assert response.status_code == 302
    assert client.get(response["Location"]).status_code == 200

    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["member@example.org"]
    link = re.search(r"http://testserver(/accounts/password/reset/key/\S+/)", mail.outbox[0].body)
    key_page = client.get(link.group(1), follow=True)
    assert key_page.status_code == 200
    assert unlabelled_inputs(key_page) == []
    set_password_path = key_page.redirect_chain[-1][0]
    done = client.post(
        set_password_path, {"password1": "a-fresh-pass-42", "password2": "a-fresh-pass-42"}
    )
    assert done.status_code == 302, done.content
    assert client.get(done["Location"]).status_code == 200

    assert not Client().login(username="member", password="pw-member")
    again = Client()
    signed = again.post("/accounts/login/", {"login": "member", "password": "a-fresh-pass-42"})
    assert signed.status_code == 302
    assert signed_in_user_id(again) == str(users["member"].pk)


@pytest.mark.parametrize(
    "path", ["/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"]
)
def test_it_labels_every_input_of_the_sign_in_pages(client, path):
    response = client.get(path)

    assert response.status_code == 200
    assert unlabelled_inputs(response) == []
    assert '<link rel="stylesheet"' in response.content.decode()


@pytest.mark.parametrize(
    "path", ["/accounts/password/change/", "/accounts/email/", "/settings/keys/"]
)
def test_it_labels_every_input_of_the_account_pages(client, users, path):
    signed_in(client, users["owner"])

    response = client.get(path)

    assert response.status_code == 200
    assert unlabelled_inputs(response) == []


def test_it_changes_the_password(client, users):
    signed_in(client, users["owner"])

    response = client.post(
        "/accounts/password/change/",
        {"oldpassword": "pw-owner", "password1": "a-new-pass-77", "password2": "a-new-pass-77"},
    )

    assert response.status_code == 302, response.content
    users["owner"].refresh_from_db()
    assert users["owner"].check_password("a-new-pass-77")


def test_it_offers_sign_up_only_when_open(client, settings):
    assert 'href="/accounts/signup/"' in client.get("/accounts/login/").content.decode()

    settings.WHARF_ALLOW_SIGNUP = False

    assert 'href="/accounts/signup/"' not in client.get("/accounts/login/").content.decode()


def test_it_shows_github_sign_in_only_when_configured(client):
    assert "/accounts/github/login/" not in client.get("/accounts/login/").content.decode()

    with override_settings(SOCIALACCOUNT_PROVIDERS=GITHUB_APP, GITHUB_CLIENT_ID="gh-id"):
        page = client.get("/accounts/login/").content.decode()

    assert "/accounts/github/login/" in page
    assert "GitHub" in page


# Profile


def test_it_sends_anonymous_visitors_of_the_profile_to_sign_in(client):
    response = client.get("/settings/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/settings/"


def test_it_lists_the_users_channels_with_roles(client, users, private_channel, public_channel):
    signed_in(client, users["maintainer"])

    page = client.get("/settings/").content.decode()

    assert "maintainer@example.org" in page
    for channel in ("private-team", "open-tools"):
        row = re.search(rf'href="/{channel}/">{channel}</a>(.*?)</li>', page, re.S)
        assert row, channel
        assert "Maintainer" in row.group(1)
    assert 'badge private">Private' in page
    assert 'badge public">Public' in page
    assert 'href="/channels/new/"' in page
    assert 'href="/accounts/password/change/"' in page
    assert 'href="/accounts/email/"' in page


def test_it_shows_the_owner_role(client, users, private_channel):
    signed_in(client, users["owner"])

    page = client.get("/settings/").content.decode()

    row = re.search(r'href="/private-team/">private-team</a>(.*?)</li>', page, re.S)
    assert "Owner" in row.group(1)


def test_it_does_not_list_other_peoples_private_channels(client, users, private_channel):
    signed_in(client, users["outsider"])

    page = client.get("/settings/").content.decode()

    assert "private-team" not in page
    assert "not a member of any channel" in page


def test_it_links_connected_accounts_only_when_github_is_on(client, users):
    signed_in(client, users["owner"])
    assert "/accounts/3rdparty/" not in client.get("/settings/").content.decode()

    with override_settings(SOCIALACCOUNT_PROVIDERS=GITHUB_APP, GITHUB_CLIENT_ID="gh-id"):
        page = client.get("/settings/").content.decode()

    assert "/accounts/3rdparty/" in page


# API keys


def test_it_sends_anonymous_visitors_of_api_keys_to_sign_in(client):
    response = client.get("/settings/keys/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/settings/keys/"


def test_it_shows_a_new_key_once_with_login_commands(client, users):
    signed_in(client, users["owner"])

    response, secret = create_key(client)

    page = response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert 'data-copy="#new-secret"' in page
    assert f"pixi auth login testserver --token {secret}" in page
    assert f"micromamba auth login http://testserver --bearer {secret}" in page
    assert f"http://testserver/t/{secret}/" in page
    assert secret not in str(dict(client.session.items()))
    listed = client.get("/settings/keys/")
    assert listed.status_code == 200
    assert secret not in listed.content.decode()
    assert secret[:10] in listed.content.decode()


def test_the_new_key_works_as_a_bearer_token(client, users, private_channel):
    signed_in(client, users["member"])
    _, secret = create_key(client)

    assert bearer_get(secret, "/api/v1/tokens/").status_code == 200
    assert bearer_get(secret, PRIVATE_REPODATA).status_code == 200
    key = ApiToken.objects.get(user=users["member"])
    assert (key.name, key.limited, key.read_only, key.expires_at) == ("ci", False, False, None)


def test_a_key_limited_to_one_channel_cannot_read_another(client, users, private_channel):
    create_channel(users["owner"], "second-team", private=True)
    signed_in(client, users["owner"])

    _, secret = create_key(client, channels=[private_channel.pk])

    assert bearer_get(secret, PRIVATE_REPODATA).status_code == 200
    assert bearer_get(secret, "/second-team/noarch/repodata.json").status_code == 404
    key = ApiToken.objects.get(user=users["owner"])
    assert list(key.channels.all()) == [private_channel]
    page = client.get("/settings/keys/").content.decode()
    assert "<td>private-team</td>" in page


def test_it_offers_only_the_users_channels(client, users, private_channel):
    signed_in(client, users["outsider"])

    page = client.get("/settings/keys/").content.decode()

    assert "private-team" not in page


@pytest.mark.parametrize("who", ["outsider", "member"])
def test_it_refuses_to_limit_a_key_to_a_channel_of_others(client, users, public_channel, who):
    theirs = create_channel(users["outsider"], "outsiders-own", private=True)
    target = public_channel if who == "outsider" else theirs
    signed_in(client, users[who])

    response = client.post(
        "/settings/keys/", {"name": "ci", "expiry": "never", "channels": [target.pk]}
    )

    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not NEW_SECRET.search(response.content.decode())
    assert not ApiToken.objects.filter(user=users[who]).exists()


def test_it_stores_the_read_only_flag(client, users, private_channel):
    signed_in(client, users["owner"])

    create_key(client, read_only="on")

    key = ApiToken.objects.get(user=users["owner"])
    assert key.read_only
    assert "<td>read-only</td>" in client.get("/settings/keys/").content.decode()


@pytest.mark.parametrize(
    ("data", "days"),
    [({"expiry": "30"}, 30), ({"expiry": "365"}, 365), ({"expiry": "days", "days": "7"}, 7)],
)
def test_it_stores_the_expiry(client, users, data, days):
    signed_in(client, users["owner"])

    create_key(client, **data)

    key = ApiToken.objects.get(user=users["owner"])
    expected = timezone.now() + timedelta(days=days)
    assert abs(key.expires_at - expected) < timedelta(minutes=1)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"name": "", "expiry": "never"}, "This field is required."),
        ({"name": "ci", "expiry": "days"}, "Enter the number of days"),
        ({"name": "ci", "expiry": "days", "days": "0"}, "greater than or equal to 1"),
        ({"name": "ci", "expiry": "days", "days": "4000"}, "less than or equal to 3650"),
    ],
)
def test_it_refuses_an_incomplete_key_form(client, users, data, error):
    signed_in(client, users["owner"])

    response = client.post("/settings/keys/", data)

    assert response.status_code == 400
    assert error in response.content.decode()
    assert not ApiToken.objects.exists()


def test_it_lists_status_and_last_use(client, users):
    owner = users["owner"]
    ApiToken.create_for(owner, "unused")
    used, _ = ApiToken.create_for(owner, "used")
    used.touch()
    ApiToken.create_for(owner, "revoked")[0].revoke()
    expired, _ = ApiToken.create_for(owner, "expired")
    ApiToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(days=1))
    ApiToken.create_for(users["member"], "not-mine")
    signed_in(client, owner)

    page = client.get("/settings/keys/").content.decode()

    rows = dict(re.findall(r"<tr>\s*<td>([^<]+)</td>(.*?)</tr>", page, re.S))
    assert set(rows) == {"unused", "used", "revoked", "expired"}
    assert "never" in rows["unused"] and ">active<" in rows["unused"]
    assert timezone.now().strftime("%Y-%m-%d") in rows["used"].split("<time")[-1]
    assert ">revoked<" in rows["revoked"] and "Revoke</button>" not in rows["revoked"]
    assert ">expired<" in rows["expired"] and "Revoke</button>" not in rows["expired"]
    assert "Revoke</button>" in rows["unused"]
    assert "<td>all</td>" in rows["unused"]


def test_it_revokes_a_key(client, users, private_channel):
    signed_in(client, users["member"])
    _, secret = create_key(client)
    key = ApiToken.objects.get(user=users["member"])

    response = client.post(f"/settings/keys/{key.pk}/revoke/", follow=True)

    assert response.redirect_chain == [("/settings/keys/", 302)]
    assert "revoked" in response.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert bearer_get(secret, "/api/v1/tokens/").status_code == 401
    assert bearer_get(secret, PRIVATE_REPODATA).status_code == 401


@pytest.mark.parametrize(
    ("who", "method", "status"), [("outsider", "post", 404), ("member", "get", 405)]
)
def test_it_does_not_revoke_for_another_user_or_on_get(client, users, who, method, status):
    key, secret = ApiToken.create_for(users["member"], "ci")
    signed_in(client, users[who])

    response = getattr(client, method)(f"/settings/keys/{key.pk}/revoke/")

    assert response.status_code == status
    key.refresh_from_db()
    assert key.is_active
    assert bearer_get(secret, "/api/v1/tokens/").status_code == 200


def test_wrong_passwords_when_confirming_it_count_towards_the_failure_limit(
    users, settings, monkeypatch
):
    # allauth asks signed-in users for their password again before some changes; a
    # stolen session must not make that a way to guess it without limit.
    settings.WHARF_AUTH_FAILURE_LIMIT = 3
    monkeypatch.setattr(failure_limit, "clock", lambda: 300 * 5_000_000 + 10.0)
    address = "10.0." + ".".join(str(secrets.randbelow(256)) for _ in range(2))
    client = signed_in(Client(REMOTE_ADDR=address), users["owner"])
    try:
        for attempt in range(3):
            response = client.post("/accounts/reauthenticate/", {"password": f"no-{attempt}"})
            assert response.status_code == 200  # the form again, with its error
            assert "password" in response.context["form"].errors

        confirmed = client.post("/accounts/reauthenticate/", {"password": "pw-owner"})

        assert confirmed.status_code == 429
    finally:
        failure_limit.forget(address)
