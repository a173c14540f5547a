"""A channel's related channels over REST: ``related_channels`` on the channel resource,
read, set on create and by PATCH, checked as the settings page checks them."""

import pytest
from django.test import Client

from channels_app import related
from channels_app.lifecycle import create_channel
from channels_app.models import Channel, RelatedChannel

pytestmark = pytest.mark.django_db

CONDA_FORGE = "https://conda.anaconda.org/conda-forge"
URL = "/api/v1/channels/private-team/"


@pytest.fixture
def secret_lab(users):
    """A private channel of the outsider, unknown to everyone else."""
    return create_channel(users["outsider"], "secret-lab", private=True)


def stored(channel):
    return [entry.label for entry in channel.related.select_related("target")]


def patch(client, entries, url=URL):
    return client.patch(url, {"related_channels": entries}, format="json")


def test_an_owner_sets_them_in_order_and_reads_them_back(
    client_for, private_channel, public_channel
):
    owner = client_for("owner")

    response = patch(owner, [CONDA_FORGE + "/", "open-tools"])

    assert response.status_code == 200, response.content
    assert response.json()["related_channels"] == [CONDA_FORGE, "open-tools"]
    assert owner.get(URL).json()["related_channels"] == [CONDA_FORGE, "open-tools"]
    assert stored(private_channel) == [CONDA_FORGE, "open-tools"]
    assert private_channel.related.get(position=1).target == public_channel


def test_a_patch_without_them_keeps_them_and_an_empty_list_clears_them(
    client_for, private_channel, public_channel
):
    related.replace(private_channel, [(public_channel, "")])
    owner = client_for("owner")

    kept = owner.patch(URL, {"description": "Changed"}, format="json")
    assert kept.json()["related_channels"] == ["open-tools"]
    cleared = patch(owner, [])

    assert cleared.status_code == 200
    assert cleared.json()["related_channels"] == []
    assert stored(private_channel) == []


def test_they_are_accepted_on_create(client_for, public_channel):
    response = client_for("owner").post(
        "/api/v1/channels/",
        {"name": "fresh", "related_channels": ["open-tools", CONDA_FORGE]},
        format="json",
    )

    assert response.status_code == 201, response.content
    assert response.json()["related_channels"] == ["open-tools", CONDA_FORGE]
    assert stored(Channel.objects.get(name="fresh")) == [
        "open-tools",
        CONDA_FORGE,
    ]


def test_a_create_naming_itself_is_refused_and_makes_no_channel(client_for, public_channel):
    response = client_for("owner").post(
        "/api/v1/channels/", {"name": "fresh", "related_channels": ["fresh"]}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["related_channels"] == ["'fresh' is this channel itself."]
    assert not Channel.objects.filter(name="fresh").exists()


def test_every_invalid_entry_is_named_and_nothing_changes(
    client_for, private_channel, public_channel
):
    related.replace(private_channel, [(public_channel, "")])
    too_long = "https://example.org/" + "x" * related.MAX_ENTRY_LENGTH

    response = patch(
        client_for("owner"),
        ["nowhere", "ftp://mirror.example.org/x", "private-team", "open-tools", "open-tools",
         too_long, CONDA_FORGE],
    )  # fmt: skip

    assert response.status_code == 400
    errors = response.json()["related_channels"]
    assert errors == [
        "No channel 'nowhere' here. For an external channel give its URL, e.g. "
        "https://conda.anaconda.org/nowhere",
        "'ftp://mirror.example.org/x' is not an http(s) channel URL.",
        "'private-team' is this channel itself.",
        "'open-tools' is listed twice.",
        f"'{too_long[:60]}…' has {len(too_long)} characters; a related channel's URL has at "
        f"most {related.MAX_ENTRY_LENGTH}.",
    ]
    assert stored(private_channel) == ["open-tools"]


def test_more_than_the_limit_is_refused(client_for, private_channel):
    entries = [f"https://example.org/c{i}" for i in range(related.MAX_RELATED + 1)]

    response = patch(client_for("owner"), entries)

    assert response.status_code == 400
    assert response.json()["related_channels"] == [
        f"At most {related.MAX_RELATED} related channels."
    ]


def test_a_channel_the_caller_cannot_read_is_refused_as_a_missing_one(
    client_for, private_channel, secret_lab
):
    owner = client_for("owner")

    hidden = patch(owner, ["secret-lab"]).json()["related_channels"]
    missing = patch(owner, ["secret-lbb"]).json()["related_channels"]

    assert [message.replace("secret-lab", "secret-lbb") for message in hidden] == missing
    assert stored(private_channel) == []


def test_a_reader_does_not_see_related_channels_they_cannot_read(
    users, client_for, tokens, public_channel, private_channel
):
    related.replace(public_channel, [(private_channel, ""), (None, CONDA_FORGE)])

    for who in ("outsider", None):
        answer = client_for(who).get("/api/v1/channels/open-tools/").json()
        assert answer["related_channels"] == [CONDA_FORGE], who
    listed = client_for("outsider").get("/api/v1/channels/").json()["results"]
    assert [c["related_channels"] for c in listed if c["name"] == "open-tools"] == [[CONDA_FORGE]]
    assert client_for("member").get("/api/v1/channels/open-tools/").json()["related_channels"] == [
        "private-team",
        CONDA_FORGE,
    ]


@pytest.mark.parametrize(("who", "status"), [("maintainer", 403), ("member", 403),
                                             ("outsider", 404), (None, 401)])  # fmt: skip
def test_only_those_who_change_settings_may_set_them(
    who, status, client_for, private_channel, public_channel
):
    response = patch(client_for(who), ["open-tools"])

    assert response.status_code == status
    assert stored(private_channel) == []


def test_a_session_needs_its_csrf_token_to_set_them(users, private_channel, public_channel):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(users["owner"])

    response = browser.patch(URL, '{"related_channels": ["open-tools"]}', "application/json")

    assert response.status_code == 403
    assert stored(private_channel) == []


def test_the_settings_page_names_every_invalid_line_too(users, private_channel, secret_lab):
    browser = Client()
    browser.force_login(users["owner"])

    response = browser.post(
        "/private-team/settings/",
        {"description": "", "private": "on", "related_channels": "nowhere\nsecret-lab\nftp://x"},
    )

    assert response.status_code == 400
    page = response.content.decode()
    for line in ("nowhere", "secret-lab", "ftp://x"):
        assert f"&#x27;{line}&#x27;" in page, line


def test_the_schema_shows_the_field_on_the_channel_resource(client):
    schema = client.get("/api/v1/schema/", headers={"Accept": "application/json"}).json()
    components = schema["components"]["schemas"]

    for name in ("Channel", "PatchedChannelUpdate"):
        field = components[name]["properties"]["related_channels"]
        assert field["type"] == "array" and field["items"]["type"] == "string", name


def test_the_rows_are_what_the_settings_page_stores(client_for, private_channel, public_channel):
    patch(client_for("owner"), ["open-tools", CONDA_FORGE])

    rows = RelatedChannel.objects.filter(channel=private_channel).order_by("position")
    assert [(r.position, r.target_id, r.url) for r in rows] == [
        (0, public_channel.pk, ""),
        (1, None, CONDA_FORGE),
    ]
