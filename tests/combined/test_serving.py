"""What a combined channel serves: its members' packages, the first member that has a
package name serving every file of it, in every form of the index."""

import bz2

import msgpack
import orjson
import pytest
from django.core.files.storage import default_storage

from packages_app.conda import statistics
from packages_app.index import repodata
from packages_app.index.store import index_folder
from packages_app.models import CombinedIndex, PackageFile

from ..packages import wait_for_index
from ..published import body, published_forms, unzstd
from .conftest import COMBINED, combine

pytestmark = pytest.mark.django_db(transaction=True)


def index_of(client, subdir, name="repodata.json"):
    response = client.get(f"/{COMBINED}/{subdir}/{name}")
    assert response.status_code == 200, response.content
    return orjson.loads(body(response))


def files_of(document):
    return set(document["packages"]) | set(document["packages.conda"])


def test_it_serves_the_union_of_its_members(client_for, team_all, team, forge, publish_to):
    mine = publish_to(team, "team-tool", subdir="linux-64")
    theirs = publish_to(forge, "numpy", "2.0", subdir="noarch")

    client = client_for("member")

    assert files_of(index_of(client, "linux-64")) == {mine.name}
    assert files_of(index_of(client, "noarch")) == {theirs.name}


def test_the_first_member_with_a_name_wins_it_in_every_subdir(
    client_for, team_all, team, forge, publish_to
):
    # team has "tool" for linux-64 only; forge has it for linux-64 and osx-64 and noarch.
    ours = publish_to(team, "tool", "1.0", subdir="linux-64")
    publish_to(forge, "tool", "9.0", subdir="linux-64")
    publish_to(forge, "tool", "9.0", subdir="osx-64")
    publish_to(forge, "tool", "9.0", subdir="noarch")
    helper = publish_to(forge, "helper", "1.0", subdir="osx-64")
    client = client_for("member")

    assert files_of(index_of(client, "linux-64")) == {ours.name}
    # Strict priority: forge's "tool" is hidden wherever team does not have it either.
    assert files_of(index_of(client, "osx-64")) == {helper.name}
    assert files_of(index_of(client, "noarch")) == set()
    channeldata = orjson.loads(body(client.get(f"/{COMBINED}/channeldata.json")))
    assert channeldata["packages"]["tool"]["version"] == "1.0"
    assert channeldata["packages"]["helper"]["version"] == "1.0"


def test_every_form_of_the_index_lists_the_same_files(
    client_for, team_all, team, forge, publish_to
):
    ours = publish_to(team, "tool", "1.0")
    publish_to(forge, "tool", "2.0")
    other = publish_to(forge, "other", "3.0", extension=".tar.bz2")
    client = client_for("owner")

    forms = published_forms(client, team_all, "noarch")

    assert {form: files for form, (files, _) in forms.items()} == dict.fromkeys(
        forms, {ours.name, other.name}
    )


def test_its_shards_hold_what_repodata_json_holds(client_for, team_all, team, forge, publish_to):
    publish_to(team, "tool", "1.0")
    publish_to(forge, "tool", "2.0")
    publish_to(forge, "other", "3.0")
    client = client_for("owner")
    document = index_of(client, "noarch")

    shard_index = msgpack.unpackb(
        unzstd(body(client.get(f"/{COMBINED}/noarch/{repodata.SHARD_INDEX}")))
    )
    from_shards = {}
    for name, digest in shard_index["shards"].items():
        shard = msgpack.unpackb(
            unzstd(body(client.get(f"/{COMBINED}/noarch/shards/{digest.hex()}.msgpack.zst")))
        )
        for filename, record in shard["packages.conda"].items():
            assert record["name"] == name
            from_shards[filename] = record["sha256"].hex()

    assert sorted(shard_index["shards"]) == ["other", "tool"]
    assert from_shards == {f: r["sha256"] for f, r in document["packages.conda"].items()}


def test_current_repodata_holds_the_newest_version_of_each_winner(
    client_for, team_all, team, forge, publish_to
):
    publish_to(team, "tool", "1.0")
    newest = publish_to(team, "tool", "1.1")
    publish_to(forge, "tool", "5.0")
    client = client_for("owner")

    current = index_of(client, "noarch", "current_repodata.json")

    assert files_of(current) == {newest.name}
    compressed = client.get(f"/{COMBINED}/noarch/current_repodata.json.zst")
    assert orjson.loads(unzstd(body(compressed))) == current


def test_it_compresses_bz2_at_its_first_request(client_for, team_all, team, publish_to):
    ours = publish_to(team, "tool", "1.0")
    client = client_for("owner")

    response = client.get(f"/{COMBINED}/noarch/repodata.json.bz2")

    assert response.status_code == 200
    assert files_of(orjson.loads(bz2.decompress(body(response)))) == {ours.name}
    assert repodata.REPODATA_BZ2 in CombinedIndex.objects.get(subdir="noarch").files


def test_it_lists_the_winners_yanked_files_as_removed(
    client_for, team_all, team, forge, publish_to
):
    ours = publish_to(team, "tool", "1.0")
    theirs = publish_to(forge, "other", "1.0")
    owner = client_for("owner")
    for channel, path in ((team, ours), (forge, theirs)):
        url = f"/api/v1/yank/{channel.name}/noarch/{path.name}"
        assert owner.post(url, {"reason": "broken"}, format="json").status_code == 200
    wait_for_index(team, "noarch")
    wait_for_index(forge, "noarch")

    document = index_of(owner, "noarch")

    assert files_of(document) == set()
    assert document["removed"] == sorted([ours.name, theirs.name])


def test_it_answers_an_unpublished_subdir_as_an_empty_one(client_for, team_all):
    document = index_of(client_for("owner"), "win-64")

    assert document["info"]["subdir"] == "win-64"
    assert files_of(document) == set()
    assert not CombinedIndex.objects.exists()


def test_it_serves_a_package_file_from_its_winner_and_counts_it_there(
    client_for, team_all, team, forge, publish_to
):
    ours = publish_to(team, "tool", "1.0")
    theirs = publish_to(forge, "other", "1.0")
    client = client_for("member")

    for path in (ours, theirs):
        response = client.get(f"/{COMBINED}/noarch/{path.name}")
        assert response.status_code == 200
        assert body(response) == path.read_bytes()
        assert response["ETag"] == f'"{PackageFile.objects.get(filename=path.name).sha256}"'

    statistics.flush()
    assert statistics.package_totals(team, ["tool"]) == {"tool": 1}
    assert statistics.package_totals(forge, ["other"]) == {"other": 1}


def test_it_does_not_serve_a_file_of_a_name_another_member_wins(
    client_for, team_all, team, forge, publish_to
):
    publish_to(team, "tool", "1.0")
    hidden = publish_to(forge, "tool", "2.0")

    response = client_for("owner").get(f"/{COMBINED}/noarch/{hidden.name}")

    assert response.status_code == 404
    assert response.json() == {"detail": f"No file 'noarch/{hidden.name}' in channel '{COMBINED}'."}


@pytest.mark.parametrize("label", ["main", "dev"])
def test_it_has_no_labels(label, client_for, team_all, team, publish_to):
    publish_to(team, "tool", "1.0")

    response = client_for("owner").get(f"/{COMBINED}/label/{label}/noarch/repodata.json")

    assert response.status_code == 404
    assert response.json() == {"detail": f"No label '{label}' in channel '{COMBINED}'."}


def test_it_answers_notices_as_a_hosted_channel(client_for, team_all, team):
    combined = client_for("owner").get(f"/{COMBINED}/notices.json")
    hosted = client_for("owner").get(f"/{team.name}/notices.json")

    assert combined.status_code == 200
    assert combined.content == hosted.content
    assert combined["ETag"] == hosted["ETag"]


def shard_index_of(client, channel, subdir="noarch"):
    response = client.get(f"/{channel}/{subdir}/{repodata.SHARD_INDEX}")
    return msgpack.unpackb(unzstd(body(response)))["shards"]


def test_a_shard_is_answered_from_the_member_that_stores_it(
    client_for, team_all, team, forge, publish_to
):
    publish_to(team, "tool", "1.0")
    publish_to(forge, "other", "1.0")
    client = client_for("member")

    combined = shard_index_of(client, COMBINED)

    assert combined == {**shard_index_of(client, forge.name), **shard_index_of(client, team.name)}
    for name, member in (("tool", team), ("other", forge)):
        digest = combined[name].hex()
        ours = client.get(f"/{COMBINED}/noarch/shards/{digest}.msgpack.zst")
        theirs = client.get(f"/{member.name}/noarch/shards/{digest}.msgpack.zst")
        assert ours.status_code == 200
        assert body(ours) == body(theirs)
        assert ours["ETag"] == theirs["ETag"]
    # Nothing was written for the combined channel but its shard index.
    assert not default_storage.exists(f"{index_folder(team_all.pk, 'noarch')}/shards")


def test_it_does_not_serve_the_shard_of_a_name_another_member_wins(
    client_for, team_all, team, forge, publish_to
):
    publish_to(team, "tool", "1.0")
    publish_to(forge, "tool", "2.0")
    client = client_for("member")
    hidden = shard_index_of(client, forge.name)["tool"].hex()

    response = client.get(f"/{COMBINED}/noarch/shards/{hidden}.msgpack.zst")

    assert client.get(f"/{forge.name}/noarch/shards/{hidden}.msgpack.zst").status_code == 200
    assert response.status_code == 404
    assert response.json() == {"detail": "No such shard."}


def test_a_private_members_shard_is_private_in_a_public_combined_channel(
    client_for, team, forge, publish_to
):
    assert combine(client_for("owner"), [team.name, forge.name], private=False).status_code == 201
    publish_to(team, "tool", "1.0")
    publish_to(forge, "other", "1.0")
    client = client_for("member")
    shards = shard_index_of(client, COMBINED)

    def cache_control(name):
        url = f"/{COMBINED}/noarch/shards/{shards[name].hex()}.msgpack.zst"
        return client.get(url)["Cache-Control"]

    assert cache_control("tool") == "private, max-age=31536000, immutable"
    assert cache_control("other") == "public, max-age=31536000, immutable"
