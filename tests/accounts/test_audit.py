"""The audit log: token, membership, visibility, upload and deletion events recorded with
their actor and channel, read by the channel's owners only (page, tab, API) and by
superusers in the admin.
"""

import pytest
from rest_framework.test import APIClient

from accounts import audit
from accounts.models import ApiToken, AuditEvent
from channels_app.lifecycle import create_channel
from channels_app.models import Membership

from ..packages import upload, wait_for_index

PUBLIC_REPODATA = "/open-tools/noarch/repodata.json"


def events(**filters):
    return list(AuditEvent.objects.filter(**filters).order_by("pk"))


def api(secret, address="192.0.2.7"):
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.mark.django_db
def test_it_records_a_tokens_creation_first_use_and_revocation(tokens, users, public_channel):
    owner = api(tokens["owner"])
    created = owner.post("/api/v1/tokens/", {"name": "ci", "read_only": True}, format="json")
    assert created.status_code == 201
    token = ApiToken.objects.get(pk=created.json()["id"])

    for _ in range(2):  # only the first use is an event
        assert api(created.json()["token"], "198.51.100.9").get(PUBLIC_REPODATA).status_code == 200
    assert owner.delete(f"/api/v1/tokens/{token.pk}/").status_code == 204
    assert owner.delete(f"/api/v1/tokens/{token.pk}/").status_code == 204  # already revoked

    recorded = events(action__startswith="token.", details__key_id=token.pk)
    recorded += events(action="token.first_used", token=token)
    by_action = {event.action: event for event in recorded}
    assert sorted(by_action) == ["token.created", "token.first_used", "token.revoked"]
    assert len(recorded) == 3
    owner_token = ApiToken.objects.get(name="owner-token")
    for action in ("token.created", "token.revoked"):
        event = by_action[action]
        assert (event.actor, event.token, event.address) == (
            users["owner"],
            owner_token,
            "192.0.2.7",
        )
        assert event.details["name"] == "ci" and event.details["key"] == token.hint
    assert by_action["token.created"].details["read_only"] is True
    first_use = by_action["token.first_used"]
    assert (first_use.actor, first_use.token_hint, first_use.address) == (
        users["owner"],
        token.hint,
        "198.51.100.9",
    )


@pytest.mark.django_db
def test_it_records_keys_made_and_revoked_on_the_api_keys_page(client, users):
    client.force_login(users["member"])
    assert client.post("/settings/keys/", {"name": "laptop", "expiry": "never"}).status_code == 200
    key = ApiToken.objects.get(name="laptop")
    client.post(f"/settings/keys/{key.pk}/revoke/")

    recorded = events(details__key_id=key.pk)

    assert [(e.action, e.actor_name, e.token) for e in recorded] == [
        ("token.created", "member", None),
        ("token.revoked", "member", None),
    ]


@pytest.mark.django_db
def test_it_records_membership_changes_made_through_the_api(tokens, users, private_channel):
    owner = api(tokens["owner"])
    base = "/api/v1/channels/private-team/members/"
    owner.post(base, {"username": "outsider", "role": "member"}, format="json")
    owner.patch(f"{base}outsider/", {"role": "maintainer"}, format="json")
    owner.patch(f"{base}outsider/", {"role": "maintainer"}, format="json")  # no change
    owner.delete(f"{base}outsider/")

    recorded = events(channel=private_channel)

    assert [(e.action, e.details) for e in recorded] == [
        ("member.added", {"user": "outsider", "role": "member"}),
        (
            "member.role_changed",
            {"user": "outsider", "role": "maintainer", "previous_role": "member"},
        ),
        ("member.removed", {"user": "outsider", "role": "maintainer"}),
    ]
    assert {(e.actor_name, e.token_hint, e.channel_name) for e in recorded} == {
        ("owner", ApiToken.objects.get(name="owner-token").hint, "private-team")
    }


@pytest.mark.django_db
def test_it_records_membership_changes_made_on_the_members_page(client, users, private_channel):
    client.force_login(users["owner"])
    page = "/private-team/members/"
    client.post(page, {"action": "add", "user": "outsider", "role": "member"})
    membership = Membership.objects.get(channel=private_channel, user=users["outsider"])
    client.post(page, {"action": "role", "membership": membership.pk, "role": "owner"})
    client.post(page, {"action": "remove", "membership": membership.pk})

    recorded = events(channel=private_channel)

    assert [e.action for e in recorded] == ["member.added", "member.role_changed", "member.removed"]
    assert {(e.actor_name, e.token, e.address) for e in recorded} == {("owner", None, "127.0.0.1")}


@pytest.mark.django_db
def test_it_records_visibility_changes_but_not_other_settings(
    client, tokens, users, private_channel
):
    api(tokens["owner"]).patch(
        "/api/v1/channels/private-team/", {"description": "new"}, format="json"
    )
    api(tokens["owner"]).patch("/api/v1/channels/private-team/", {"private": False}, format="json")
    client.force_login(users["owner"])
    client.post("/private-team/settings/", {"description": "again", "private": "on"})
    client.post("/private-team/settings/", {"description": "once more", "private": "on"})

    recorded = events(channel=private_channel)

    assert [(e.action, e.details, bool(e.token)) for e in recorded] == [
        ("channel.visibility_changed", {"private": False}, True),
        ("channel.visibility_changed", {"private": True}, False),
    ]


@pytest.mark.django_db
def test_it_keeps_a_deleted_channels_events_away_from_a_new_channel_of_that_name(
    client, tokens, users
):
    owner = api(tokens["owner"])
    assert owner.post("/api/v1/channels/", {"name": "reused", "private": True}).status_code == 201
    assert owner.delete("/api/v1/channels/reused/").status_code == 204
    create_channel(users["outsider"], "reused", private=True)

    recorded = events(channel_name="reused")
    client.force_login(users["outsider"])
    page = client.get("/reused/audit/")

    assert [(e.action, e.channel, e.actor_name) for e in recorded] == [
        ("channel.created", None, "owner"),
        ("channel.deleted", None, "owner"),
    ]
    assert page.status_code == 200
    assert "Nothing recorded yet" in page.content.decode()


@pytest.fixture
def recorded(private_channel, users):
    """A few events of the private channel, and one of another channel."""
    for name in ("alpha", "beta"):
        audit.record("member.added", actor=users["owner"], channel=private_channel, user=name)
    other = create_channel(users["outsider"], "elsewhere", private=True)
    audit.record("member.added", actor=users["outsider"], channel=other, user="gamma")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "status"),
    [("owner", 200), ("maintainer", 403), ("member", 403), ("outsider", 404), (None, 404)],
)
def test_only_owners_read_the_audit_page(client, users, recorded, who, status):
    if who:
        client.force_login(users[who])

    response = client.get("/private-team/audit/")

    assert response.status_code == status
    html = response.content.decode()
    assert ("alpha" in html) == ("beta" in html) == (status == 200)
    assert "gamma" not in html


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "shown"), [("owner", True), ("maintainer", False), ("member", False)]
)
def test_only_owners_see_the_audit_tab(client, users, private_channel, who, shown):
    client.force_login(users[who])

    html = client.get("/private-team/").content.decode()

    assert ('href="/private-team/audit/"' in html) == shown


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "status"),
    [("owner", 200), ("maintainer", 403), ("member", 403), ("outsider", 404), (None, 401)],
)
def test_only_owners_read_the_audit_log_through_the_api(client_for, recorded, who, status):
    response = client_for(who).get("/api/v1/channels/private-team/audit/")

    assert response.status_code == status
    if status == 200:
        body = response.json()
        assert body["count"] == 2
        assert [e["details"]["user"] for e in body["results"]] == ["beta", "alpha"]
        assert set(body["results"][0]) == {
            "id", "created_at", "action", "actor", "token", "channel", "address", "details"
        }  # fmt: skip


@pytest.mark.django_db
def test_the_audit_log_is_paged(client_for, users, private_channel):
    for n in range(55):
        audit.record("member.added", actor=users["owner"], channel=private_channel, user=f"u{n}")

    first = client_for("owner").get("/api/v1/channels/private-team/audit/").json()
    second = client_for("owner").get(first["next"]).json()

    assert (first["count"], len(first["results"]), len(second["results"])) == (55, 50, 5)
    assert first["results"][0]["details"]["user"] == "u54"


@pytest.mark.django_db
def test_a_token_limited_to_another_channel_does_not_read_the_audit_log(users, recorded):
    other = create_channel(users["owner"], "owners-other", private=True)
    _, secret = ApiToken.create_for(users["owner"], "limited", channels=[other])

    response = api(secret).get("/api/v1/channels/private-team/audit/")

    assert response.status_code == 404


@pytest.mark.django_db
def test_the_admin_shows_events_to_superusers_only(client, django_user_model, users, recorded):
    root = django_user_model.objects.create_superuser("root", "root@example.org", "pw-root")
    client.force_login(users["owner"])  # owns a channel, so may use the admin
    assert client.get("/admin/accounts/auditevent/").status_code == 403

    client.force_login(root)
    response = client.get("/admin/accounts/auditevent/")

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 3


@pytest.mark.django_db(transaction=True)
def test_it_records_uploads_and_deletions(tokens, private_channel, packages):
    path = packages.make("logged", "1.0")
    maintainer = api(tokens["maintainer"])
    assert upload(maintainer, "private-team", path).status_code == 201
    wait_for_index(private_channel, "noarch")
    assert maintainer.delete(f"/api/v1/delete/private-team/noarch/{path.name}").status_code == 204

    recorded = events(channel=private_channel, action__startswith="package.")

    assert [(e.action, e.actor_name, e.details["filename"]) for e in recorded] == [
        ("package.uploaded", "maintainer", path.name),
        ("package.deleted", "maintainer", path.name),
    ]
    assert {e.token_hint for e in recorded} == {ApiToken.objects.get(name="maintainer-token").hint}
