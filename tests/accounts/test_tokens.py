"""API tokens: shown once, stored as a digest, revocable, expiring, limited to channels."""

import hashlib
import io
import re
from datetime import timedelta

import orjson
import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import ApiToken
from channels_app.lifecycle import create_channel
from channels_app.models import Channel

pytestmark = pytest.mark.django_db

SECRET = re.compile(r"^wharf-[A-Za-z0-9-]+$")
PRIVATE_REPODATA = "/private-team/noarch/repodata.json"


def create_token(client, **data):
    response = client.post("/api/v1/tokens/", {"name": "ci", **data}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def rows_containing(text):
    """Every row of every table that holds ``text`` anywhere."""
    return [
        (model._meta.label, row)
        for model in apps.get_models()
        for row in model.objects.values_list()
        if text in repr(row)
    ]


def test_it_returns_the_secret_once_and_stores_only_its_digest(client_for, users):
    created = create_token(client_for("owner"))

    secret = created["token"]
    assert SECRET.match(secret)
    token = ApiToken.objects.get(pk=created["id"])
    assert token.user == users["owner"]
    assert token.digest == hashlib.sha256(secret.encode()).hexdigest()
    assert secret.startswith(token.hint) and len(token.hint) < len(secret)
    assert rows_containing(secret) == []


def test_it_never_lists_or_shows_the_secret_again(client_for):
    owner = client_for("owner")
    created = create_token(owner)

    listed = owner.get("/api/v1/tokens/")
    shown = owner.get(f"/api/v1/tokens/{created['id']}/")

    assert listed.status_code == shown.status_code == 200
    assert created["id"] in [t["id"] for t in listed.json()["results"]]
    for response in (listed, shown):
        assert created["token"] not in response.content.decode()
    assert "token" not in shown.json()
    assert all("token" not in entry for entry in listed.json()["results"])


def test_it_refuses_a_token_once_revoked(client_for, public_channel):
    owner = client_for("owner")
    created = create_token(owner)
    with_secret = client_for(secret=created["token"])
    assert with_secret.get("/api/v1/tokens/").status_code == 200

    revoked = owner.delete(f"/api/v1/tokens/{created['id']}/")

    assert revoked.status_code == 204
    for path in ("/api/v1/tokens/", f"/{public_channel.name}/noarch/repodata.json"):
        response = with_secret.get(path)
        assert response.status_code == 401, response.content
        assert "revoked" in response.json()["detail"]
    listed = {t["id"]: t for t in owner.get("/api/v1/tokens/").json()["results"]}
    assert listed[created["id"]]["active"] is False
    assert listed[created["id"]]["revoked_at"] is not None


def test_it_hides_other_users_tokens(client_for, tokens, users):
    owner_token = ApiToken.objects.get(user=users["owner"])
    outsider = client_for("outsider")

    listed = outsider.get("/api/v1/tokens/").json()["results"]
    shown = outsider.get(f"/api/v1/tokens/{owner_token.pk}/")
    revoked = outsider.delete(f"/api/v1/tokens/{owner_token.pk}/")

    assert owner_token.pk not in [t["id"] for t in listed]
    assert shown.status_code == 404
    assert revoked.status_code == 404
    owner_token.refresh_from_db()
    assert owner_token.is_active
    assert client_for("owner").get("/api/v1/tokens/").status_code == 200


def test_it_refuses_an_expired_token(client_for, public_channel):
    created = create_token(client_for("owner"), expires_in_days=1)
    token = ApiToken.objects.get(pk=created["id"])
    assert token.expires_at > timezone.now() + timedelta(hours=23)
    with_secret = client_for(secret=created["token"])
    assert with_secret.get("/api/v1/tokens/").status_code == 200

    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    for path in ("/api/v1/tokens/", f"/{public_channel.name}/noarch/repodata.json"):
        response = with_secret.get(path)
        assert response.status_code == 401, response.content
        assert "expired" in response.json()["detail"]


def test_it_records_when_a_token_was_last_used(client_for, tokens, users, public_channel):
    token = ApiToken.objects.get(user=users["member"])
    assert token.last_used_at is None

    before = timezone.now()
    response = client_for("member").get(f"/{public_channel.name}/noarch/repodata.json")

    assert response.status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None
    assert before <= token.last_used_at <= timezone.now()


def test_it_limits_a_token_to_the_channels_given(client_for, private_channel, public_channel):
    member = client_for("member")
    to_public = create_token(member, channels=[public_channel.name])
    to_private = create_token(member, channels=[private_channel.name])

    assert to_public["channels"] == [public_channel.name]
    assert to_private["channels"] == [private_channel.name]
    assert client_for(secret=to_public["token"]).get(PRIVATE_REPODATA).status_code == 404
    assert client_for(secret=to_private["token"]).get(PRIVATE_REPODATA).status_code == 200
    assert member.get(PRIVATE_REPODATA).status_code == 200
    listed = client_for(secret=to_public["token"]).get("/api/v1/channels/").json()["results"]
    assert [c["name"] for c in listed] == [public_channel.name]


def test_it_answers_a_hidden_channel_restriction_as_a_nonexistent_one(client_for, private_channel):
    outsider = client_for("outsider")

    hidden = outsider.post(
        "/api/v1/tokens/", {"name": "x", "channels": [private_channel.name]}, format="json"
    )
    missing = outsider.post(
        "/api/v1/tokens/", {"name": "x", "channels": ["no-such-channel"]}, format="json"
    )

    assert hidden.status_code == missing.status_code == 400
    assert hidden.json() == {"channels": [f"Channel '{private_channel.name}' not found."]}
    assert (
        orjson.loads(missing.content.replace(b"no-such-channel", private_channel.name.encode()))
        == hidden.json()
    )
    assert not ApiToken.objects.filter(name="x").exists()


def test_it_keeps_limited_and_read_only_tokens_from_widening_access(
    client_for, users, public_channel
):
    _, limited = ApiToken.create_for(users["owner"], "limited", channels=[public_channel])
    _, read_only = ApiToken.create_for(users["owner"], "read-only", read_only=True)

    unlimited = client_for(secret=limited).post("/api/v1/tokens/", {"name": "w"}, format="json")
    writable = client_for(secret=read_only).post("/api/v1/tokens/", {"name": "w"}, format="json")

    assert unlimited.status_code == writable.status_code == 403
    assert not ApiToken.objects.filter(name="w").exists()


def test_the_keys_page_and_the_api_limit_tokens_to_the_same_channels(
    client, client_for, users, private_channel, public_channel
):
    """One rule (channels_app.tokens.rules): a token may be limited to the channels where
    its user holds a role, whether it is made on the API keys page or by the REST API."""
    create_channel(users["outsider"], "outsiders-public")
    create_channel(users["outsider"], "outsiders-private", private=True)
    api = client_for("member")
    client.force_login(users["member"])

    offered = client.get("/settings/keys/").context["form"].fields["channels"].queryset
    by_api, on_page, refusals = set(), set(), {}
    for channel in Channel.objects.order_by("name"):
        answer = api.post(
            "/api/v1/tokens/", {"name": f"api-{channel.name}", "channels": [channel.name]},
            format="json",
        )  # fmt: skip
        assert answer.status_code in (201, 400), answer.content
        if answer.status_code == 201:
            by_api.add(channel.name)
        else:
            refusals[channel.name] = answer.json()["channels"]
        data = {"name": f"page-{channel.name}", "expiry": "never", "channels": [channel.pk]}
        # The page refuses what the API refuses, with the same status.
        page = client.post("/settings/keys/", data)
        assert page.status_code == (200 if answer.status_code == 201 else 400)
        if ApiToken.objects.filter(name=f"page-{channel.name}").exists():
            on_page.add(channel.name)

    mine = {private_channel.name, public_channel.name}
    assert {channel.name for channel in offered} == by_api == on_page == mine
    assert refusals == {
        "outsiders-private": ["Channel 'outsiders-private' not found."],
        "outsiders-public": [
            "You hold no role in channel 'outsiders-public'; a token may be limited only to "
            "channels you are a member of."
        ],
    }


def test_it_refuses_token_management_without_credentials(client_for):
    assert client_for().get("/api/v1/tokens/").status_code == 401
    assert client_for().post("/api/v1/tokens/", {"name": "x"}, format="json").status_code == 401


# The management command ----------------------------------------------------------------


def run_create_token(*args):
    out = io.StringIO()
    call_command("create_token", *args, stdout=out)
    return out.getvalue().strip()


def test_it_prints_a_working_token_from_the_command_line(client_for, users, private_channel):
    secret = run_create_token("member", "--name", "laptop")

    assert SECRET.match(secret)
    token = ApiToken.objects.get(name="laptop")
    assert token.user == users["member"]
    assert not token.read_only and token.expires_at is None
    assert client_for(secret=secret).get(PRIVATE_REPODATA).status_code == 200


def test_it_creates_a_limited_read_only_expiring_token_from_the_command_line(
    client_for, private_channel, public_channel
):
    secret = run_create_token(
        "owner",
        "--name",
        "mirror",
        "--channel",
        public_channel.name,
        "--read-only",
        "--expires",
        "7",
    )

    token = ApiToken.objects.get(name="mirror")
    assert token.read_only
    assert list(token.channels.values_list("name", flat=True)) == [public_channel.name]
    expected = timezone.now() + timedelta(days=7)
    assert abs(token.expires_at - expected) < timedelta(minutes=1)
    with_secret = client_for(secret=secret)
    assert with_secret.get(f"/{public_channel.name}/noarch/repodata.json").status_code == 200
    assert with_secret.get(PRIVATE_REPODATA).status_code == 404


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ghost", "--name", "x"], "No user 'ghost'"),
        (["owner", "--name", "x", "--channel", "nowhere"], "No channel nowhere"),
        (["owner", "--name", "x", "--expires", "0"], "1 or more"),
    ],
    ids=["unknown user", "unknown channel", "bad expiry"],
)
def test_it_reports_command_line_mistakes(args, message, users):
    with pytest.raises(CommandError, match=message):
        run_create_token(*args)
    assert not ApiToken.objects.exists()


def test_the_command_line_limits_tokens_by_the_same_rule(users, public_channel):
    with pytest.raises(CommandError, match="You hold no role in channel 'open-tools'"):
        run_create_token("outsider", "--name", "x", "--channel", public_channel.name)
    assert not ApiToken.objects.exists()


def test_it_keeps_a_token_limited_after_its_only_channel_is_deleted(
    client_for, users, private_channel
):
    doomed = create_channel(users["owner"], "short-lived", private=True)
    _, limited = ApiToken.create_for(users["owner"], "limited", channels=[doomed])
    with_secret = client_for(secret=limited)
    assert with_secret.get(PRIVATE_REPODATA).status_code == 404

    assert client_for("owner").delete("/api/v1/channels/short-lived/").status_code == 204

    assert with_secret.get(PRIVATE_REPODATA).status_code in (401, 404)
    listed = with_secret.get("/api/v1/channels/")
    assert listed.status_code == 401 or listed.json()["results"] == []


@pytest.mark.django_db
def test_it_lets_a_narrowed_token_revoke_only_itself(client_for, users, public_channel):
    read_only, read_only_secret = ApiToken.create_for(users["owner"], "ci", read_only=True)
    full = ApiToken.objects.get(user=users["owner"], name="owner-token")
    narrowed = client_for(secret=read_only_secret)

    assert narrowed.delete(f"/api/v1/tokens/{full.pk}/").status_code == 403
    full.refresh_from_db()
    assert full.revoked_at is None
    assert narrowed.delete(f"/api/v1/tokens/{read_only.pk}/").status_code == 204


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["read_only", "limited"])
def test_it_refuses_channel_creation_with_a_narrowed_token(kind, client_for, users, public_channel):
    options = {"read_only": True} if kind == "read_only" else {"channels": [public_channel]}
    _, secret = ApiToken.create_for(users["owner"], kind, **options)

    response = client_for(secret=secret).post(
        "/api/v1/channels/", {"name": "sneaky", "private": True}, format="json"
    )

    assert response.status_code == 403
    assert not Channel.objects.filter(name="sneaky").exists()
