"""Hardening: limits on failed authentications, the audit log, CSRF, inert package
metadata, security headers and the production settings.

Which channel data each kind of caller can see, route by route, is in test_isolation.py.
"""

import os
import re
import runpy
import secrets
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from accounts import audit
from accounts.authentication import FailureLimit, failure_limit
from accounts.models import ApiToken, AuditEvent
from channels_app.lifecycle import create_channel
from channels_app.models import Membership
from packages_app.models import PackageFile
from registry import security

from ..deployment import ROOT
from ..packages import catalog_file, upload, wait_for_index

UNKNOWN = "wharf-NotARealTokenAtAll0123456789"
PUBLIC_REPODATA = "/open-tools/noarch/repodata.json"
PRIVATE_REPODATA = "/private-team/noarch/repodata.json"
WINDOW = 300


# Failed authentications ----------------------------------------------------------------


@pytest.fixture
def limit(settings, monkeypatch):
    """A limit of 3 failures per 300 s, a clock 10 s into a window, and fresh addresses.

    Addresses are random so that counts left in a shared cache (Redis in services mode)
    by another test or run never meet these; they are forgotten afterwards too.
    """
    settings.WHARF_AUTH_FAILURE_LIMIT = 3
    settings.WHARF_AUTH_FAILURE_WINDOW_SECONDS = WINDOW
    start = WINDOW * 5_000_000 + 10.0
    now = [start]
    monkeypatch.setattr(failure_limit, "clock", lambda: now[0])
    used = []

    class Limit:
        def address(self):
            address = "10." + ".".join(str(secrets.randbelow(256)) for _ in range(3))
            used.append(address)
            return address

        def advance(self, seconds):
            now[0] += seconds

    yield Limit()
    now[0] = start  # the window the counts were made in
    for address in used:
        failure_limit.forget(address)


def from_address(address, secret=None, cls=Client):
    client = cls(REMOTE_ADDR=address)
    if secret:
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return client


def fail(address, times):
    for _ in range(times):
        response = from_address(address, UNKNOWN).get(PUBLIC_REPODATA)
        assert response.status_code == 401, response.content


@pytest.mark.django_db
def test_it_answers_429_on_every_route_once_an_address_has_too_many_unknown_tokens(
    limit, tokens, users, public_channel, private_channel
):
    address = limit.address()
    fail(address, 3)

    member = tokens["member"]
    session = from_address(address)
    session.force_login(users["member"])
    refused = {
        "conda file": from_address(address, member).get(PRIVATE_REPODATA),
        "conda file, token in URL": from_address(address).get(f"/t/{member}{PRIVATE_REPODATA}"),
        "conda file, X-API-Key": from_address(address).get(
            PRIVATE_REPODATA, headers={"X-API-Key": member}
        ),
        "REST": from_address(address, member).get("/api/v1/channels/"),
        "web page, signed in": session.get("/private-team/"),
        "form": session.post("/channels/new/", {"name": "fresh"}),
        "upload": from_address(address, member).post("/api/v1/upload/private-team"),
    }

    for route, response in refused.items():
        assert response.status_code == 429, route
        assert response["Retry-After"] == str(WINDOW - 10), route
        assert "try again in 290 seconds" in response.json()["detail"], route


@pytest.mark.django_db
def test_it_still_serves_anonymous_reads_and_other_addresses(limit, tokens, public_channel):
    address = limit.address()
    fail(address, 3)

    assert from_address(address).get(PUBLIC_REPODATA).status_code == 200
    assert from_address(address).get("/open-tools/").status_code == 200
    assert from_address(limit.address(), tokens["member"]).get(PUBLIC_REPODATA).status_code == 200


@pytest.mark.django_db
def test_it_lets_the_address_try_again_when_the_window_ends(limit, tokens, public_channel):
    address = limit.address()
    fail(address, 3)
    member = from_address(address, tokens["member"])
    assert member.get(PUBLIC_REPODATA).status_code == 429

    limit.advance(WINDOW - 10)

    assert member.get(PUBLIC_REPODATA).status_code == 200


@pytest.mark.django_db
def test_it_counts_neither_good_nor_revoked_tokens(limit, tokens, users, public_channel):
    """Only a secret that matches no token can come from guessing; a stale token in a
    script must not lock its whole network out."""
    address = limit.address()
    revoked, revoked_secret = ApiToken.create_for(users["owner"], "old")
    revoked.revoke()
    for _ in range(5):
        assert from_address(address, tokens["member"]).get(PUBLIC_REPODATA).status_code == 200
        assert from_address(address, revoked_secret).get(PUBLIC_REPODATA).status_code == 401

    assert from_address(address, tokens["member"]).get(PUBLIC_REPODATA).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "login_field"),
    [("/accounts/login/", "login"), ("/admin/login/", "username")],
    ids=["sign-in page", "admin sign-in"],
)
def test_it_counts_wrong_passwords_and_then_refuses_even_the_right_one(
    limit, django_user_model, path, login_field
):
    # A new name each run: allauth's own limit per login name outlives a run in Redis.
    name = f"owner-{secrets.token_hex(4)}"
    owner = django_user_model.objects.create_user(name, password="pw-right")
    create_channel(owner, f"{name}-channel")  # so that the admin lets them in
    address = limit.address()
    client = from_address(address)
    for attempt in range(3):
        response = client.post(path, {login_field: name, "password": f"wrong-{attempt}"})
        assert response.status_code == 200  # the form again, with its error

    response = client.post(path, {login_field: name, "password": "pw-right"})

    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_it_reads_the_address_from_the_trusted_proxy_only(limit, settings, tokens, public_channel):
    settings.WHARF_TRUSTED_PROXY_COUNT = 1
    proxy, client_address = limit.address(), limit.address()

    def through_proxy(forwarded_for, secret):
        client = from_address(proxy, secret)
        return client.get(PUBLIC_REPODATA, headers={"X-Forwarded-For": forwarded_for})

    # The client's own X-Forwarded-For entries come first; the proxy appends the address.
    for spoofed in ("1.2.3.4", "5.6.7.8", "9.9.9.9"):
        assert through_proxy(f"{spoofed}, {client_address}", UNKNOWN).status_code == 401

    assert through_proxy(f"4.4.4.4, {client_address}", tokens["member"]).status_code == 429
    assert through_proxy(limit.address(), tokens["member"]).status_code == 200
    assert from_address(proxy, tokens["member"]).get(PUBLIC_REPODATA).status_code == 200


@pytest.mark.django_db
def test_it_ignores_x_forwarded_for_without_a_trusted_proxy(limit, tokens, public_channel):
    address = limit.address()
    for n in range(3):
        client = from_address(address, UNKNOWN)
        response = client.get(PUBLIC_REPODATA, headers={"X-Forwarded-For": f"1.1.1.{n}"})
        assert response.status_code == 401
    assert from_address(address, tokens["member"]).get(PUBLIC_REPODATA).status_code == 429


@pytest.mark.django_db
def test_it_counts_ipv6_addresses_by_their_64_bit_network(limit, tokens, public_channel):
    network = f"2001:db8:{secrets.randbelow(65536):x}:{secrets.randbelow(65536):x}"
    for host in (1, 2, 3):
        fail(f"{network}::{host}", 1)

    same_network = from_address(f"{network}::ffff", tokens["member"])
    other_network = from_address("2001:db8:ffff:ffff::1", tokens["member"])
    assert same_network.get(PUBLIC_REPODATA).status_code == 429
    assert other_network.get(PUBLIC_REPODATA).status_code == 200
    failure_limit.forget(f"{network}::1")


@pytest.mark.django_db
def test_failures_counted_by_other_processes_take_effect_within_a_second(
    limit, tokens, users, public_channel
):
    other_process = FailureLimit()  # its own memory, the same cache
    other_process.clock = failure_limit.clock
    reader, signer = limit.address(), limit.address()
    member = from_address(reader, tokens["member"])
    for address in (reader, signer):
        assert from_address(address, tokens["member"]).get(PUBLIC_REPODATA).status_code == 200
        for _ in range(3):  # counted elsewhere: in the cache only
            other_process.failed(RequestFactory().get("/", REMOTE_ADDR=address))

    assert member.get(PUBLIC_REPODATA).status_code == 200  # this process still remembers
    sign_in = from_address(signer).post("/accounts/login/", {"login": "owner", "password": "x"})
    assert sign_in.status_code == 429  # a change always asks the cache
    limit.advance(1)
    assert member.get(PUBLIC_REPODATA).status_code == 429


@pytest.mark.django_db
def test_a_limit_of_zero_counts_nothing(limit, settings, tokens, public_channel):
    settings.WHARF_AUTH_FAILURE_LIMIT = 0
    address = limit.address()
    fail(address, 5)

    assert from_address(address, tokens["member"]).get(PUBLIC_REPODATA).status_code == 200


# The audit log -------------------------------------------------------------------------


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


# CSRF ----------------------------------------------------------------------------------

# A form's body: an HTML form, or allauth's {% element form %} up to its body slot's end.
POST_FORMS = [
    re.compile(r"<form\b[^>]*method=\"post\"[^>]*>(.*?)</form>", re.S | re.I),
    re.compile(r"{% element form [^%]*method=\"post\"[^%]*%}(.*?){% endslot %}", re.S),
]


def templates_with_forms():
    return [
        pytest.param(path, id=str(path.relative_to(ROOT / "templates")))
        for path in sorted((ROOT / "templates").rglob("*.html"))
        if 'method="post"' in path.read_text().lower()
    ]


@pytest.mark.parametrize("path", templates_with_forms())
def test_every_post_form_carries_a_csrf_token(path):
    forms = [form for pattern in POST_FORMS for form in pattern.findall(path.read_text())]

    assert forms
    assert all("{% csrf_token %}" in form for form in forms)


@pytest.fixture
def owner_web(users):
    client = Client(enforce_csrf_checks=True)
    client.force_login(users["owner"])
    return client


@pytest.mark.django_db
def test_every_web_form_refuses_a_post_without_its_csrf_token(owner_web, users, private_channel):
    key, _ = ApiToken.create_for(users["owner"], "kept")
    membership = Membership.objects.get(channel=private_channel, user=users["member"])
    package_file = catalog_file(private_channel, "noarch", "kept", "1.0")
    forms = {
        "/channels/new/": {"name": "forged"},
        "/private-team/members/": {"action": "remove", "membership": membership.pk},
        "/private-team/settings/": {"description": "forged"},
        "/private-team/delete/": {"confirm": "private-team"},
        f"/private-team/packages/kept/files/noarch/{package_file.filename}/delete/": {},
        "/settings/keys/": {"name": "forged", "expiry": "never"},
        f"/settings/keys/{key.pk}/revoke/": {},
        "/accounts/logout/": {},
        "/api/v1/channels/": {"name": "forged-too"},
        f"/admin/channels_app/channel/{private_channel.pk}/delete/": {"post": "yes"},
    }

    for url, data in forms.items():
        assert owner_web.post(url, data).status_code == 403, url

    private_channel.refresh_from_db()
    assert private_channel.description == "Ours"
    assert Membership.objects.filter(pk=membership.pk).exists()
    assert PackageFile.objects.filter(pk=package_file.pk).exists()
    assert list(ApiToken.objects.filter(user=users["owner"])) == [key]
    key.refresh_from_db()
    assert key.revoked_at is None
    assert owner_web.get("/settings/").status_code == 200  # still signed in


# Untrusted package metadata ------------------------------------------------------------

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.mark.django_db
def test_package_names_and_summaries_are_escaped_on_every_listing(client, public_channel):
    catalog_file(public_channel, "noarch", "hostile", "1.0", summary=HOSTILE)
    from packages_app import catalog

    catalog.refresh(public_channel, ["hostile"])

    for url in ("/", "/open-tools/", "/search/?q=hostile", "/open-tools/packages/hostile/"):
        html = client.get(url).content.decode()
        assert "hostile" in html, url
        assert "<script>alert" not in html and "<img src=x" not in html, url
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html, url


@pytest.mark.django_db
def test_channel_data_files_are_json_that_browsers_do_not_sniff(client, public_channel):
    catalog_file(public_channel, "noarch", "hostile", "1.0", summary=HOSTILE)

    response = client.get("/open-tools/channeldata.json")

    assert response["Content-Type"] == "application/json"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.json()["packages"]["hostile"]["summary"] == HOSTILE


# Security headers ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_every_kind_of_answer_carries_the_security_headers(
    client, client_for, users, public_channel, packages
):
    path = packages.make("headed", "1.0")
    assert upload(client_for("owner"), "open-tools", path).status_code == 201
    wait_for_index(public_channel, "noarch")
    answers = {
        "page": client.get("/open-tools/"),
        "404 page": client.get("/no-such-channel/"),
        "REST": client_for("member").get("/api/v1/channels/"),
        "conda index, fast path": client_for("member").get(PUBLIC_REPODATA),
        "package file, fast path": client.get(f"/open-tools/noarch/{path.name}"),
    }
    static = client.get("/static/wharf.css")

    for kind, response in [*answers.items(), ("static file", static)]:
        policy = response["Content-Security-Policy"]
        assert policy == django_settings.WHARF_CONTENT_SECURITY_POLICY, kind
        assert response["X-Content-Type-Options"] == "nosniff", kind
        assert response["Referrer-Policy"] == "same-origin", kind
    for kind, response in answers.items():  # a stylesheet is framed by nothing anyway
        assert response["X-Frame-Options"] == "DENY", kind


def test_the_policy_allows_only_wharfs_own_scripts_and_styles():
    directives = dict(part.strip().split(" ", 1) for part in security.policy().split(";"))

    assert directives["script-src"] == directives["style-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"


@pytest.mark.django_db
def test_only_the_api_docs_allow_inline_styles_and_no_page_has_inline_scripts(client):
    docs = client.get("/api/v1/docs/")
    script = client.get("/api/v1/docs/?script=")

    assert docs.status_code == script.status_code == 200
    assert "style-src 'self' 'unsafe-inline'" in docs["Content-Security-Policy"]
    assert "script-src 'self';" in docs["Content-Security-Policy"]
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", docs.content.decode()) == []
    assert "'unsafe-inline'" not in client.get("/").get("Content-Security-Policy")


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+=\"", re.I)


def templates_of_pages():
    return [
        pytest.param(path, id=str(path.relative_to(ROOT / "templates")))
        for path in sorted((ROOT / "templates").rglob("*.html"))
    ]


@pytest.mark.parametrize("path", templates_of_pages())
def test_no_template_has_inline_scripts_or_event_handlers(path):
    assert INLINE_SCRIPT.findall(path.read_text()) == []


# Production settings -------------------------------------------------------------------

STRONG_KEY = "k" * 20 + "0123456789abcdefghijklmnopqrstuvwxyzABCD"


def settings_module(monkeypatch, tmp_path, **env):
    """The values registry/settings.py computes with ``env`` (on top of a clean slate)."""
    for name in list(os.environ):
        if name.startswith("WHARF_") or name in {"SECRET_KEY", "DEBUG", "REDIS_URL"}:
            monkeypatch.delenv(name)
    monkeypatch.setenv("WHARF_DATA_DIR", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "registry" / "settings.py"))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "SECRET_KEY is not set"),
        ({"SECRET_KEY": "short-but-set"}, "too weak"),
        ({"SECRET_KEY": "django-insecure-" + STRONG_KEY}, "too weak"),
        ({"SECRET_KEY": "ab" * 40}, "too weak"),
        ({"SECRET_KEY": STRONG_KEY, "DEBUG": "1"}, "DEBUG must be off"),
    ],
    ids=["no key", "short key", "django's placeholder", "repetitive key", "debug"],
)
def test_production_refuses_to_start_without_a_real_secret_key_or_with_debug(
    monkeypatch, tmp_path, env, message
):
    with pytest.raises(ImproperlyConfigured, match=message):
        settings_module(monkeypatch, tmp_path, WHARF_PRODUCTION="1", **env)

    assert not (tmp_path / "secret_key").exists()  # the embedded key is never a fallback


def test_production_turns_on_secure_cookies_hsts_and_the_https_redirect(monkeypatch, tmp_path):
    values = settings_module(
        monkeypatch, tmp_path, WHARF_PRODUCTION="1", SECRET_KEY=STRONG_KEY,
        WHARF_TRUSTED_PROXY_COUNT="1",
    )  # fmt: skip

    assert values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"]
    assert values["SECURE_SSL_REDIRECT"]
    assert values["SECURE_HSTS_SECONDS"] == 365 * 24 * 3600
    assert values["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")
    assert values["ALLAUTH_TRUSTED_PROXY_COUNT"] == 1


def test_the_embedded_mode_runs_over_plain_http(monkeypatch, tmp_path):
    values = settings_module(monkeypatch, tmp_path)

    assert not values["SESSION_COOKIE_SECURE"] and not values["SECURE_SSL_REDIRECT"]
    assert values["SECURE_HSTS_SECONDS"] == 0
    assert "SECURE_PROXY_SSL_HEADER" not in values
    assert len(values["SECRET_KEY"]) >= 50


def test_the_cache_is_redis_when_there_is_redis(monkeypatch, tmp_path):
    with_redis = settings_module(monkeypatch, tmp_path, REDIS_URL="redis://127.0.0.1:6379/3")
    without = settings_module(monkeypatch, tmp_path)

    assert with_redis["CACHES"]["default"]["BACKEND"].endswith("RedisCache")
    assert with_redis["CACHES"]["default"]["LOCATION"] == "redis://127.0.0.1:6379/3"
    assert without["CACHES"]["default"]["BACKEND"].endswith("LocMemCache")


@pytest.fixture(scope="module")
def deploy_check(tmp_path_factory):
    """``manage.py check --deploy`` with production settings: (exit code, output)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("WHARF_") and name not in {"SECRET_KEY", "DEBUG"}
    }
    env.update(
        WHARF_PRODUCTION="1",
        SECRET_KEY=STRONG_KEY,
        ALLOWED_HOSTS="wharf.example.org",
        WHARF_DATA_DIR=str(tmp_path_factory.mktemp("deploy")),
        DJANGO_SETTINGS_MODULE="registry.settings",
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def test_check_deploy_finds_no_security_problem_in_production_settings(deploy_check):
    _, output = deploy_check

    assert "security." not in output, output
    assert "ERRORS" not in output, output


def test_check_deploy_is_clean_with_production_settings(deploy_check):
    code, output = deploy_check

    assert code == 0, output
    assert "no issues" in output, output


# The policy in a real browser ------------------------------------------------------------


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_no_page_breaks_the_content_security_policy_in_a_browser(
    live_server_url, monkeypatch, django_user_model, users, public_channel
):
    """Every kind of page, the admin and Swagger UI load in chromium without a single
    CSP violation (chromium reports each one on the console)."""
    from playwright.sync_api import expect

    from ..browser import browser_context, sign_in

    root = django_user_model.objects.create_superuser("root", "root@example.org", "pw-root")
    catalog_file(public_channel, "noarch", "shown", "1.0", summary="Shown")
    from packages_app import catalog

    catalog.refresh(public_channel, ["shown"])
    pages = [
        "/accounts/login/",
        "/",
        "/channels/",
        "/search/?q=shown",
        "/open-tools/",
        "/open-tools/packages/shown/",
        "/open-tools/upload/",
        "/open-tools/members/",
        "/open-tools/settings/",
        "/open-tools/audit/",
        "/settings/keys/",
        "/admin/",
        f"/admin/channels_app/channel/{public_channel.pk}/change/",
        "/admin/accounts/auditevent/",
    ]
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    violations = []
    with browser_context(live_server_url) as context:
        page = context.new_page()
        page.on(
            "console",
            lambda message: (
                violations.append((page.url, message.text))
                if "Content Security Policy" in message.text
                else None
            ),
        )
        page.goto("/accounts/login/")
        sign_in(context, root, live_server_url)
        for path in pages:
            response = page.goto(path)
            assert response.status == 200, path
        page.goto("/api/v1/docs/")
        expect(page.locator(".opblock").first).to_be_visible()  # the schema was loaded

    assert violations == []
