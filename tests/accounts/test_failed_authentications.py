"""Limits on failed authentications: an address that presents too many unknown tokens or
wrong passwords is refused on every route until its window ends, counted across processes.
"""

import secrets

import pytest
from django.test import Client, RequestFactory

from accounts.authentication import FailureLimit, failure_limit
from accounts.models import ApiToken
from channels_app.lifecycle import create_channel

UNKNOWN = "wharf-NotARealTokenAtAll0123456789"
PUBLIC_REPODATA = "/open-tools/noarch/repodata.json"
PRIVATE_REPODATA = "/private-team/noarch/repodata.json"
WINDOW = 300


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
