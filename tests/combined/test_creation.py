"""Creating a combined channel through the REST API, what it refuses, and uploads to it."""

import pytest

from channels_app.models import Channel, CombinedMember, Kind
from packages_app.models import PackageFile

from ..packages import upload
from .conftest import COMBINED, combine

pytestmark = pytest.mark.django_db


def test_it_creates_a_combined_channel_of_the_named_channels_in_order(client_for, team, forge):
    response = combine(client_for("owner"), [forge.name, team.name])

    assert response.status_code == 201, response.content
    assert response.json()["kind"] == "combined"
    assert response.json()["combines"] == [forge.name, team.name]
    channel = Channel.objects.get(name=COMBINED)
    assert channel.kind == Kind.COMBINED
    members = CombinedMember.objects.filter(channel=channel).order_by("position")
    assert [m.member.name for m in members] == [forge.name, team.name]
    shown = client_for("owner").get(f"/api/v1/channels/{COMBINED}/").json()
    assert (shown["kind"], shown["combines"]) == ("combined", [forge.name, team.name])


@pytest.mark.parametrize(
    ("combines", "message"),
    [
        (["open-tools", "nope"], "No channel 'nope' here that you may read."),
        (["open-tools", "open-tools"], "'combines' names a channel twice."),
    ],
    ids=["unknown channel", "twice"],
)
def test_it_refuses_bad_member_lists(combines, message, client_for, forge):
    response = combine(client_for("owner"), combines)

    assert response.status_code == 400, response.content
    assert response.json() == {"combines": [message]}
    assert not Channel.objects.filter(name=COMBINED).exists()


def test_it_refuses_a_combined_channel_among_the_members(client_for, team, forge):
    assert combine(client_for("owner"), [team.name], name="inner").status_code == 201

    response = combine(client_for("owner"), ["inner", forge.name])

    assert response.status_code == 400
    assert response.json() == {
        "combines": ["'inner' is a combined channel itself; combine its channels."]
    }


def test_it_refuses_a_member_the_creator_may_not_read_as_an_unknown_one(client_for, team, forge):
    hidden = combine(client_for("outsider"), [forge.name, team.name])
    missing = combine(client_for("outsider"), [forge.name, "no-such-channel"])

    assert hidden.status_code == missing.status_code == 400
    assert hidden.json() == {"combines": [f"No channel '{team.name}' here that you may read."]}
    assert (
        missing.json()["combines"][0].replace("no-such-channel", team.name)
        == (hidden.json()["combines"][0])
    )


def test_it_shows_only_the_members_the_caller_may_read(client_for, team, forge):
    response = combine(client_for("owner"), [team.name, forge.name], private=False)
    assert response.status_code == 201

    for who, names in (("outsider", [forge.name]), ("member", [team.name, forge.name])):
        shown = client_for(who).get(f"/api/v1/channels/{COMBINED}/")
        assert shown.json()["combines"] == names


def test_it_refuses_uploads_with_409(client_for, team_all, packages):
    path = packages.make("tool", "1.0")
    owner = client_for("owner")
    expected = {
        "detail": f"Channel '{COMBINED}' takes no uploads: it is a combined channel: its "
        "packages are those of the channels it combines."
    }

    by_prefix = upload(owner, COMBINED, path)
    by_put = owner.put(
        f"/{COMBINED}/noarch/{path.name}",
        path.read_bytes(),
        content_type="application/octet-stream",
    )

    assert (by_prefix.status_code, by_prefix.json()) == (409, expected)
    assert (by_put.status_code, by_put.json()) == (409, expected)
    assert not PackageFile.objects.exists()
