"""Isolation through combined channels.

A private combined channel answers those who may not read it as a missing channel, on
every conda route. A combined channel with a private member answers those who may not
read that member exactly as a combined channel without it: none of its packages, shards
or files, and no header, ETag or error that differs. Those who may read both see both.
"""

import io

import msgpack
import orjson
import pytest
import zstandard

from accounts.models import ApiToken
from channels_app.lifecycle import create_channel
from channels_app.models import Channel, Membership, Role

from ..packages import publish
from .test_isolation import MISSING, SECRET_PACKAGE, TOKEN_FORMS, Visitor, body_of, normalized

pytestmark = pytest.mark.django_db(transaction=True)

PRIVATE_COMBINED = "team-all"  # private: [private-team, open-tools]
PUBLIC_COMBINED = "all-open"  # public: [private-team, open-tools]
CONTROL = "open-only"  # public: [open-tools], what the public one must look like
PUBLIC_PACKAGE = "open-tool"

ROUTES = {
    "repodata.json": "/{channel}/noarch/repodata.json",
    "repodata.json.zst": "/{channel}/noarch/repodata.json.zst",
    "repodata.json.bz2": "/{channel}/noarch/repodata.json.bz2",
    "shard index": "/{channel}/noarch/repodata_shards.msgpack.zst",
    "current_repodata.json": "/{channel}/noarch/current_repodata.json",
    "current_repodata.json.zst": "/{channel}/noarch/current_repodata.json.zst",
    "secret shard": "/{channel}/noarch/shards/{shard}.msgpack.zst",
    "secret package file": "/{channel}/noarch/{file}",
    "public package file": "/{channel}/noarch/{public}",
    "channeldata.json": "/{channel}/channeldata.json",
    "label repodata.json": "/{channel}/label/main/noarch/repodata.json",
    "rest channel": "/api/v1/channels/{channel}/",
}
# Files whose bytes are the same for the same content (the others carry a creation time
# or are compressed): their strong ETag must be too.
SAME_BYTES = ("repodata.json", "current_repodata.json", "channeldata.json", "public package file")


def unzstd(data):
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()


@pytest.fixture
def world(users, tokens, client_for, private_channel, public_channel, packages, django_user_model):
    """The private member holds the secret package, the public one another; three
    combined channels; one user is a member of the private combined channel alone."""
    secret = packages.make(SECRET_PACKAGE, "1.0")
    public = packages.make(PUBLIC_PACKAGE, "1.0")
    publish(client_for, private_channel, secret)
    publish(client_for, public_channel, public)
    owner = client_for("owner")
    for name, private, members in (
        (PRIVATE_COMBINED, True, [private_channel.name, public_channel.name]),
        (PUBLIC_COMBINED, False, [private_channel.name, public_channel.name]),
        (CONTROL, False, [public_channel.name]),
    ):
        response = owner.post(
            "/api/v1/channels/",
            {"name": name, "private": private, "combines": members},
            format="json",
        )
        assert response.status_code == 201, response.content
    team_all = Channel.objects.get(name=PRIVATE_COMBINED)
    Membership.objects.create(channel=team_all, user=users["member"], role=Role.MEMBER)
    combined_only = django_user_model.objects.create_user("combined-only", "co@example.org", "pw")
    Membership.objects.create(channel=team_all, user=combined_only, role=Role.MEMBER)
    elsewhere = create_channel(users["outsider"], "elsewhere", private=True)
    _, limited = ApiToken.create_for(users["member"], "limited", channels=[elsewhere])
    index = client_for("owner").get(f"/{private_channel.name}/noarch/repodata_shards.msgpack.zst")
    shard = msgpack.unpackb(unzstd(body_of(index)))["shards"][SECRET_PACKAGE].hex()
    return {
        "values": {"file": secret.name, "public": public.name, "shard": shard},
        "visitors": {
            "anonymous": Visitor(),
            "outsider token": Visitor(secret=tokens["outsider"]),
            "limited token": Visitor(secret=limited),
            "combined-only member": Visitor(secret=ApiToken.create_for(combined_only, "t")[1]),
            "member of both": Visitor(secret=tokens["member"]),
            "owner": Visitor(secret=tokens["owner"]),
        },
    }


HIDDEN = {"anonymous": 401, "outsider token": 404, "limited token": 404}


@pytest.mark.parametrize("who", list(HIDDEN))
def test_a_private_combined_channel_answers_as_a_missing_one(world, who):
    visitor = world["visitors"][who]
    problems = []

    for name, route in ROUTES.items():
        for form in TOKEN_FORMS if who != "anonymous" else ["bearer"]:
            hidden = visitor.send(route.format(channel=PRIVATE_COMBINED, **world["values"]), form)
            missing = visitor.send(route.format(channel=MISSING, **world["values"]), form)
            where = f"{name} ({form})"
            if hidden.status_code != HIDDEN[who] or missing.status_code != HIDDEN[who]:
                problems.append(f"{where}: {hidden.status_code}, {missing.status_code}")
            for header in ("WWW-Authenticate", "Content-Type", "ETag"):
                if hidden.get(header) != missing.get(header):
                    problems.append(f"{where}: {header} differs from a missing channel's")
            if normalized(hidden) != normalized(missing, (MISSING, PRIVATE_COMBINED)):
                problems.append(f"{where}: the body differs from a missing channel's")

    assert problems == []


def shard_names(response):
    return sorted(msgpack.unpackb(unzstd(body_of(response)))["shards"])


@pytest.mark.parametrize("who", ["anonymous", "outsider token", "limited token"])
def test_a_private_member_adds_nothing_for_those_who_may_not_read_it(world, who):
    visitor = world["visitors"][who]
    problems = []

    for name, route in ROUTES.items():
        if name.startswith("label") or name == "rest channel":
            continue
        seen = visitor.send(route.format(channel=PUBLIC_COMBINED, **world["values"]))
        control = visitor.send(route.format(channel=CONTROL, **world["values"]))
        headers = ("Content-Type", "Cache-Control", "WWW-Authenticate")
        headers += ("ETag",) if name in SAME_BYTES else ()
        if seen.status_code != control.status_code:
            problems.append(f"{name}: {seen.status_code}, without the member {control.status_code}")
        for header in headers:
            if seen.get(header) != control.get(header):
                problems.append(f"{name}: {header} differs from the channel without the member")
        if name == "shard index":
            names = shard_names(seen)
            if not names == shard_names(control) == [PUBLIC_PACKAGE]:
                problems.append(f"{name}: names {names}")
        elif (name in SAME_BYTES or seen.status_code == 404) and normalized(seen) != normalized(
            control, (CONTROL, PUBLIC_COMBINED)
        ):
            problems.append(f"{name}: the body differs from the channel without the member")
        # A 404 repeats the name asked for; elsewhere nothing may name the member's things.
        text = (normalized(seen) if not name.endswith("zst") else "") + str(seen.headers)
        for word in (SECRET_PACKAGE, "private-team") if name != "secret package file" else ():
            if word in text:
                problems.append(f"{name}: names {word!r}")

    assert problems == []


def test_a_member_of_the_combined_channel_alone_sees_only_the_public_member(world):
    visitor = world["visitors"]["combined-only member"]
    values = world["values"]

    def get(name):
        return visitor.send(ROUTES[name].format(channel=PRIVATE_COMBINED, **values))

    repodata = get("repodata.json")
    control = world["visitors"]["anonymous"].send(f"/{CONTROL}/noarch/repodata.json")
    assert list(orjson.loads(body_of(repodata))["packages.conda"]) == [values["public"]]
    assert repodata["ETag"] == control["ETag"]
    assert shard_names(get("shard index")) == [PUBLIC_PACKAGE]
    assert get("secret shard").status_code == 404
    assert get("secret package file").json() == {
        "detail": f"No file 'noarch/{values['file']}' in channel '{PRIVATE_COMBINED}'."
    }
    assert SECRET_PACKAGE not in normalized(get("channeldata.json"))
    assert get("rest channel").json()["combines"] == ["open-tools"]


@pytest.mark.parametrize("who", ["member of both", "owner"])
@pytest.mark.parametrize("channel", [PRIVATE_COMBINED, PUBLIC_COMBINED])
def test_a_reader_of_both_sees_both(world, who, channel):
    visitor = world["visitors"][who]
    values = world["values"]

    def get(name):
        return visitor.send(ROUTES[name].format(channel=channel, **values))

    listed = orjson.loads(body_of(get("repodata.json")))["packages.conda"]
    assert sorted(listed) == sorted([values["file"], values["public"]])
    assert shard_names(get("shard index")) == sorted([PUBLIC_PACKAGE, SECRET_PACKAGE])
    assert get("secret shard").status_code == 200
    assert get("secret package file").status_code == 200
    assert get("public package file").status_code == 200
    assert SECRET_PACKAGE in orjson.loads(body_of(get("channeldata.json")))["packages"]
