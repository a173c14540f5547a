"""The channels, members and search REST API."""

import orjson
import pytest
from django.core.files.storage import default_storage

from channels_app.lifecycle import create_channel
from channels_app.models import Channel, Membership, Role
from packages_app.models import SubdirIndex

from ..packages import upload, wait_for_index

PRIVATE = "private-team"
PUBLIC = "open-tools"


def json_of(response):
    if response.streaming:
        return orjson.loads(b"".join(response.streaming_content))
    return orjson.loads(response.content)


def create(client, name, **extra):
    data = {"name": name, "description": "", "private": False, **extra}
    return client.post("/api/v1/channels/", data, format="json")


def names(response):
    assert response.status_code == 200, response.content
    return [entry["name"] for entry in response.json()["results"]]


# Creating ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_creates_a_channel_owned_by_its_creator_with_an_empty_index(client_for, users):
    creator = client_for("outsider")

    response = create(creator, "fresh", description="Brand new", private=True)

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["description"], body["private"], body["role"]) == (
        "fresh",
        "Brand new",
        True,
        "owner",
    )
    channel = Channel.objects.get(name="fresh")
    assert channel.role_of(users["outsider"]) == Role.OWNER
    assert channel.created_by == users["outsider"]
    repodata = creator.get("/fresh/noarch/repodata.json")
    assert repodata.status_code == 200
    data = json_of(repodata)
    assert data["packages"] == {}
    assert data["packages.conda"] == {}
    assert data["info"]["subdir"] == "noarch"
    assert client_for("member").get("/fresh/noarch/repodata.json").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("Upper", "lowercase letters"),
        ("with space", "lowercase letters"),
        ("-leading-dash", "starts with a letter or digit"),
        ("x" * 101, "at most 100 characters"),
    ],
    ids=["uppercase", "space", "leading dash", "too long"],
)
def test_it_refuses_an_invalid_channel_name(name, words, client_for, users):
    response = create(client_for("owner"), name)

    assert response.status_code == 400
    assert any(words in message for message in response.json()["name"])
    assert not Channel.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["api", "admin", "accounts", "static", "t", "healthz", "readyz"])
def test_it_refuses_a_reserved_channel_name(name, client_for, users):
    response = create(client_for("owner"), name)

    assert response.status_code == 400
    assert response.json()["name"] == [
        f"'{name}' is reserved by Wharf; choose another channel name."
    ]
    assert not Channel.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_duplicate_channel_name(client_for, public_channel):
    response = create(client_for("outsider"), PUBLIC, private=True)

    assert response.status_code == 400
    assert any("already exists" in message for message in response.json()["name"])
    assert Channel.objects.get(name=PUBLIC).private is False
    assert Channel.objects.get(name=PUBLIC).role_of(public_channel.created_by) == Role.OWNER


@pytest.mark.django_db
def test_it_refuses_to_create_a_channel_anonymously(client_for):
    response = create(client_for(), "nobodys")

    assert response.status_code == 401
    assert response.has_header("WWW-Authenticate")
    assert not Channel.objects.exists()


# Listing, changing, deleting -----------------------------------------------------------


@pytest.mark.django_db
def test_it_lists_public_channels_and_only_the_callers_private_ones(
    client_for, users, private_channel, public_channel
):
    create_channel(users["outsider"], "outsider-only", private=True)

    assert names(client_for().get("/api/v1/channels/")) == [PUBLIC]
    assert names(client_for("outsider").get("/api/v1/channels/")) == [PUBLIC, "outsider-only"]
    assert names(client_for("member").get("/api/v1/channels/")) == [PUBLIC, PRIVATE]
    roles = {
        c["name"]: c["role"]
        for c in client_for("member").get("/api/v1/channels/").json()["results"]
    }
    assert roles == {PUBLIC: "member", PRIVATE: "member"}


@pytest.mark.django_db
def test_it_lets_the_owner_change_visibility(client_for, private_channel):
    assert client_for().get(f"/{PRIVATE}/noarch/repodata.json").status_code == 401

    response = client_for("owner").patch(
        f"/api/v1/channels/{PRIVATE}/", {"private": False, "description": "Open now"}, format="json"
    )

    assert response.status_code == 200, response.content
    assert (response.json()["private"], response.json()["description"]) == (False, "Open now")
    assert client_for().get(f"/{PRIVATE}/noarch/repodata.json").status_code == 200
    assert PRIVATE in names(client_for("outsider").get("/api/v1/channels/"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "status"), [("maintainer", 403), ("member", 403), ("outsider", 404)]
)
def test_it_lets_only_the_owner_change_a_channel(who, status, client_for, private_channel):
    response = client_for(who).patch(
        f"/api/v1/channels/{PRIVATE}/", {"private": False}, format="json"
    )

    assert response.status_code == status, response.content
    private_channel.refresh_from_db()
    assert private_channel.private is True


@pytest.mark.django_db(transaction=True)
def test_it_lets_the_owner_delete_a_channel_with_its_files(client_for, private_channel):
    published = SubdirIndex.objects.get(channel=private_channel, subdir="noarch").published_path
    assert default_storage.exists(f"{published}/repodata.json")
    owner = client_for("owner")

    response = owner.delete(f"/api/v1/channels/{PRIVATE}/")

    assert response.status_code == 204
    assert not Channel.objects.filter(name=PRIVATE).exists()
    for path in (f"/api/v1/channels/{PRIVATE}/", f"/{PRIVATE}/noarch/repodata.json"):
        gone = owner.get(path)
        assert gone.status_code == 404
        assert json_of(gone) == {"detail": f"Channel '{PRIVATE}' not found."}
    assert not default_storage.exists(f"{published}/repodata.json")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "status"), [("maintainer", 403), ("member", 403), ("outsider", 404)]
)
def test_it_lets_only_the_owner_delete_a_channel(who, status, client_for, private_channel):
    response = client_for(who).delete(f"/api/v1/channels/{PRIVATE}/")

    assert response.status_code == status, response.content
    assert Channel.objects.filter(name=PRIVATE).exists()


# Members -------------------------------------------------------------------------------

MEMBERS = f"/api/v1/channels/{PRIVATE}/members/"


def roles_of(channel):
    return dict(channel.memberships.values_list("user__username", "role"))


@pytest.mark.django_db
def test_it_lets_the_owner_manage_members(client_for, private_channel):
    owner = client_for("owner")

    listed = owner.get(MEMBERS)
    added = owner.post(MEMBERS, {"username": "outsider", "role": "member"}, format="json")
    promoted = owner.patch(f"{MEMBERS}outsider/", {"role": "maintainer"}, format="json")

    assert listed.status_code == 200
    assert [(m["username"], m["role"]) for m in listed.json()] == [
        ("maintainer", "maintainer"),
        ("member", "member"),
        ("owner", "owner"),
    ]
    assert added.status_code == 201, added.content
    assert promoted.status_code == 200, promoted.content
    assert roles_of(private_channel)["outsider"] == "maintainer"
    assert client_for("outsider").get(f"/{PRIVATE}/noarch/repodata.json").status_code == 200

    removed = owner.delete(f"{MEMBERS}outsider/")

    assert removed.status_code == 204
    assert "outsider" not in roles_of(private_channel)
    assert client_for("outsider").get(f"/{PRIVATE}/noarch/repodata.json").status_code == 404


@pytest.mark.django_db
def test_it_refuses_to_add_a_member_twice(client_for, private_channel):
    response = client_for("owner").post(MEMBERS, {"username": "member"}, format="json")

    assert response.status_code == 400
    assert response.json()["username"] == ["member is already a member of 'private-team'."]
    assert roles_of(private_channel)["member"] == "member"


MEMBER_OPERATIONS = {
    "list": ("get", MEMBERS, None),
    "add": ("post", MEMBERS, {"username": "outsider", "role": "owner"}),
    "change role": ("patch", f"{MEMBERS}member/", {"role": "owner"}),
    "remove": ("delete", f"{MEMBERS}member/", None),
}


@pytest.mark.django_db
@pytest.mark.parametrize("operation", MEMBER_OPERATIONS)
@pytest.mark.parametrize(
    ("who", "status"), [("maintainer", 403), ("member", 403), ("outsider", 404)]
)
def test_it_lets_only_the_owner_manage_members(operation, who, status, client_for, private_channel):
    before = roles_of(private_channel)
    method, path, data = MEMBER_OPERATIONS[operation]

    response = getattr(client_for(who), method)(path, data, format="json")

    assert response.status_code == status, response.content
    if status == 404:
        assert response.json() == {"detail": f"Channel '{PRIVATE}' not found."}
    assert roles_of(private_channel) == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "data"),
    [("delete", None), ("patch", {"role": "maintainer"})],
    ids=["remove", "demote"],
)
def test_it_keeps_the_last_owner(method, data, client_for, private_channel):
    owner = client_for("owner")

    response = getattr(owner, method)(f"{MEMBERS}owner/", data, format="json")

    assert response.status_code == 400
    assert response.json()["role"] == ["A channel must keep at least one owner."]
    assert roles_of(private_channel)["owner"] == Role.OWNER


@pytest.mark.django_db
def test_it_lets_an_owner_step_down_once_another_owner_exists(client_for, private_channel):
    owner = client_for("owner")
    assert owner.patch(f"{MEMBERS}maintainer/", {"role": "owner"}, format="json").status_code == 200

    response = owner.patch(f"{MEMBERS}owner/", {"role": "member"}, format="json")

    assert response.status_code == 200, response.content
    assert roles_of(private_channel)["owner"] == Role.MEMBER
    assert Membership.objects.filter(channel=private_channel, role=Role.OWNER).count() == 1


# Search --------------------------------------------------------------------------------

PUBLIC_PACKAGES = {
    "tool": "A demo package",
    "toolbox": "A demo package",
    "atool": "A demo package",
    "other": "Helps every tool along",
    "unrelated": "Nothing to see",
}
PRIVATE_PACKAGES = {"tool-secret": "A demo package"}


@pytest.fixture
def searchable(client_for, packages, private_channel, public_channel):
    owner = client_for("owner")
    for channel, entries in (
        (public_channel, PUBLIC_PACKAGES),
        (private_channel, PRIVATE_PACKAGES),
    ):
        for name, summary in entries.items():
            path = packages.make(name, "1.0", summary=summary)
            assert upload(owner, channel.name, path).status_code == 201
        wait_for_index(channel, "noarch")


def found(client, query):
    response = client.get("/api/v1/search", {"q": query})
    assert response.status_code == 200, response.content
    return [(entry["channel"], entry["name"]) for entry in response.json()["results"]]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("who", "sees_private"),
    [("anonymous", False), ("outsider", False), ("member", True), ("owner", True)],
)
def test_it_searches_private_channels_only_for_their_members(
    who, sees_private, client_for, searchable
):
    results = found(client_for(None if who == "anonymous" else who), "secret")

    assert results == ([(PRIVATE, "tool-secret")] if sees_private else [])


@pytest.mark.django_db(transaction=True)
def test_it_ranks_exact_names_first_then_prefixes_then_other_matches(client_for, searchable):
    assert found(client_for("outsider"), "TOOL") == [
        (PUBLIC, "tool"),
        (PUBLIC, "toolbox"),
        (PUBLIC, "atool"),
        (PUBLIC, "other"),
    ]
    assert found(client_for("member"), "tool") == [
        (PUBLIC, "tool"),
        (PRIVATE, "tool-secret"),
        (PUBLIC, "toolbox"),
        (PUBLIC, "atool"),
        (PUBLIC, "other"),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("query", [None, "", "   "], ids=["missing", "empty", "blank"])
def test_it_requires_a_search_term(query, client_for):
    params = {} if query is None else {"q": query}

    response = client_for().get("/api/v1/search", params)

    assert response.status_code == 400
    assert response.json() == {"q": ["Give a search term with ?q=."]}
