"""The access matrix: who may read, upload and delete in which channel, by every route.

A private channel does not exist for those who may not read it: anonymous callers get 401
(with a WWW-Authenticate challenge) and signed-in callers get 404, with the very answer a
channel that does not exist gets. A bad credential is 401 everywhere, never anonymous.
"""

import base64

import orjson
import pytest
from django.test import Client

from packages_app.models import PackageFile

from ..packages import upload, wait_for_index

PRIVATE = "private-team"
PUBLIC = "open-tools"
MISSING = "no-such-channel"

CALLERS = [
    "anonymous",
    "outsider",
    "member",
    "maintainer",
    "owner",
    "revoked",
    "expired",
    "read-only",
    "other-channel",
]

PRIVATE_READ = {
    "anonymous": 401,
    "outsider": 404,
    "member": 200,
    "maintainer": 200,
    "owner": 200,
    "revoked": 401,
    "expired": 401,
    "read-only": 200,
    "other-channel": 404,
}
PRIVATE_UPLOAD = {
    "anonymous": 401,
    "outsider": 404,
    "member": 403,
    "maintainer": 201,
    "owner": 201,
    "revoked": 401,
    "expired": 401,
    "read-only": 403,
    "other-channel": 404,
}
PRIVATE_DELETE = {**PRIVATE_UPLOAD, "maintainer": 204, "owner": 204}
PUBLIC_READ = {**dict.fromkeys(CALLERS, 200), "revoked": 401, "expired": 401}
PUBLIC_UPLOAD = {
    "anonymous": 401,
    "outsider": 403,
    "member": 403,
    "maintainer": 201,
    "owner": 201,
    "revoked": 401,
    "expired": 401,
    "read-only": 403,
    "other-channel": 403,
}

READ_ROUTES = {
    "conda repodata": "/{channel}/noarch/repodata.json",
    "rest channel": "/api/v1/channels/{channel}/",
    "rest packages": "/api/v1/channels/{channel}/packages/",
}


def cases(expected):
    return [pytest.param(who, expected[who], id=who) for who in CALLERS]


def read_cases(expected):
    return [
        pytest.param(route, who, expected[who], id=f"{name}-{who}")
        for name, route in READ_ROUTES.items()
        for who in CALLERS
    ]


def body_of(response):
    if response.streaming:
        return orjson.loads(b"".join(response.streaming_content))
    return orjson.loads(response.content)


def assert_answer(response, status, channel):
    """The status, plus what every 401 and every hiding 404 must look like."""
    assert response.status_code == status, response.content
    if status == 401:
        assert response["WWW-Authenticate"].startswith("Bearer")
    if status == 404:
        assert body_of(response) == {"detail": f"Channel '{channel}' not found."}


def assert_read_body(route, body, channel):
    if route.endswith("repodata.json"):
        assert body["info"]["subdir"] == "noarch"
    elif route.endswith("/packages/"):
        assert body["results"] == []
    else:
        assert body["name"] == channel


# Reading -------------------------------------------------------------------------------


def assert_read(client, route, status, channel):
    response = client.get(route.format(channel=channel))

    assert_answer(response, status, channel)
    if status == 200:
        assert_read_body(route, body_of(response), channel)


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "who", "status"), read_cases(PRIVATE_READ))
def test_it_lets_only_members_read_a_private_channel(
    route, who, status, client_as, private_channel
):
    assert_read(client_as(who), route, status, PRIVATE)


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "who", "status"), read_cases(PUBLIC_READ))
def test_it_lets_everyone_but_bad_tokens_read_a_public_channel(
    route, who, status, client_as, public_channel
):
    assert_read(client_as(who), route, status, PUBLIC)


@pytest.mark.django_db
@pytest.mark.parametrize("channel", [PRIVATE, PUBLIC])
@pytest.mark.parametrize("route", READ_ROUTES.values(), ids=READ_ROUTES.keys())
def test_it_answers_401_to_an_unknown_token(
    route, channel, client_for, private_channel, public_channel
):
    response = client_for(secret="wharf-NotARealTokenAtAll0123456789").get(
        route.format(channel=channel)
    )

    assert_answer(response, 401, channel)
    assert body_of(response) == {"detail": "Invalid token."}


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["revoked", "expired", "unknown"])
@pytest.mark.parametrize("route", ["/api/v1/channels/", "/api/v1/search?q=demo", "/api/v1/tokens/"])
def test_it_answers_401_to_a_bad_token_on_routes_without_a_channel(
    route, who, client_for, secrets, public_channel
):
    secret = secrets.get(who, "wharf-NotARealTokenAtAll0123456789")

    response = client_for(secret=secret).get(route)

    assert_answer(response, 401, None)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "words"), [("revoked", "revoked"), ("expired", "expired")], ids=["revoked", "expired"]
)
def test_it_says_why_a_token_is_refused(who, words, client_as, public_channel):
    response = client_as(who).get(f"/{PUBLIC}/noarch/repodata.json")

    assert_answer(response, 401, PUBLIC)
    assert words in body_of(response)["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("route", READ_ROUTES.values(), ids=READ_ROUTES.keys())
@pytest.mark.parametrize("who", ["anonymous", "outsider"])
def test_it_answers_a_hidden_channel_as_a_nonexistent_one(route, who, client_as, private_channel):
    hidden = client_as(who).get(route.format(channel=PRIVATE))
    missing = client_as(who).get(route.format(channel=MISSING))

    assert hidden.status_code == missing.status_code == (401 if who == "anonymous" else 404)
    assert hidden.has_header("WWW-Authenticate") == missing.has_header("WWW-Authenticate")
    assert body_of(hidden) == orjson.loads(
        orjson.dumps(body_of(missing)).replace(MISSING.encode(), PRIVATE.encode())
    )


# Credential forms ----------------------------------------------------------------------


def _basic(user, secret):
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def _request_private(form, secret):
    path = f"/{PRIVATE}/noarch/repodata.json"
    client = Client()
    if form == "bearer":
        return client.get(path, headers={"Authorization": f"Bearer {secret}"})
    if form == "basic":
        return client.get(path, headers={"Authorization": _basic("anyone", secret)})
    if form == "basic without user name":
        return client.get(path, headers={"Authorization": _basic("", secret)})
    if form == "x-api-key":
        return client.get(path, headers={"X-API-Key": secret})
    if form == "url":
        return client.get(f"/t/{secret}{path}")
    raise AssertionError(form)


FORMS = ["bearer", "basic", "basic without user name", "x-api-key", "url"]


@pytest.mark.django_db
@pytest.mark.parametrize("form", FORMS)
def test_it_reads_a_private_channel_with_every_credential_form(form, tokens, private_channel):
    response = _request_private(form, tokens["member"])

    assert response.status_code == 200, response.content
    assert body_of(response)["info"]["subdir"] == "noarch"


@pytest.mark.django_db
@pytest.mark.parametrize("form", FORMS)
def test_it_refuses_a_revoked_token_in_every_credential_form(form, secrets, private_channel):
    response = _request_private(form, secrets["revoked"])

    assert_answer(response, 401, PRIVATE)
    assert "revoked" in body_of(response)["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize(("who", "status"), [("member", 200), ("outsider", 404)])
def test_it_reads_a_private_channel_with_a_browser_session(who, status, users, private_channel):
    client = Client()
    client.force_login(users[who])

    for route in READ_ROUTES.values():
        assert_answer(client.get(route.format(channel=PRIVATE)), status, PRIVATE)


# Uploading and deleting ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("who", "status"), cases(PRIVATE_UPLOAD))
def test_it_lets_only_maintainers_and_owners_upload_to_a_private_channel(
    who, status, client_as, private_channel, packages
):
    path = packages.make("guarded", "1.0")

    response = upload(client_as(who), PRIVATE, path)

    assert_answer(response, status, PRIVATE)
    stored = PackageFile.objects.filter(channel=private_channel, filename=path.name).exists()
    assert stored == (status == 201)
    if status == 403:
        assert response.json()["detail"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("who", "status"), cases(PUBLIC_UPLOAD))
def test_it_lets_only_maintainers_and_owners_upload_to_a_public_channel(
    who, status, client_as, public_channel, packages
):
    path = packages.make("open", "1.0")

    response = upload(client_as(who), PUBLIC, path)

    assert_answer(response, status, PUBLIC)
    stored = PackageFile.objects.filter(channel=public_channel, filename=path.name).exists()
    assert stored == (status == 201)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("who", "status"), cases(PRIVATE_DELETE))
def test_it_lets_only_maintainers_and_owners_delete_a_package(
    who, status, client_as, client_for, private_channel, packages
):
    path = packages.make("doomed", "1.0")
    assert upload(client_for("owner"), PRIVATE, path).status_code == 201
    wait_for_index(private_channel, "noarch")

    response = client_as(who).delete(f"/api/v1/delete/{PRIVATE}/noarch/{path.name}")

    assert_answer(response, status, PRIVATE)
    still_there = PackageFile.objects.filter(filename=path.name).exists()
    assert still_there == (status != 204)
    wait_for_index(private_channel, "noarch")
    records = body_of(client_for("owner").get(f"/{PRIVATE}/noarch/repodata.json"))
    assert (path.name in records["packages.conda"]) == still_there


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", ["anonymous", "outsider"])
def test_it_answers_hidden_writes_as_writes_to_a_nonexistent_channel(
    who, client_as, private_channel, packages
):
    path = packages.make("probe", "1.0")
    client = client_as(who)

    for channel in (PRIVATE, MISSING):
        answers = [
            upload(client, channel, path),
            client.delete(f"/api/v1/delete/{channel}/noarch/{path.name}"),
            client.post(
                f"/api/v1/channels/{channel}/labels/dev/move/",
                {"to": "main"},
                content_type="application/json",
            ),  # fmt: skip
        ]
        for response in answers:
            status = 401 if who == "anonymous" else 404
            assert_answer(response, status, channel)
            detail = response.json()["detail"].replace(channel, "<channel>")
            if status == 404:
                assert detail == "Channel '<channel>' not found."
            else:
                assert detail.startswith("Channel '<channel>' needs credentials")
    assert not PackageFile.objects.exists()
