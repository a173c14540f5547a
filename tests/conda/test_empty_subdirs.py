"""Every platform subdir of a channel (and of a label it uses) answers, empty when it has
no packages, and so does notices.json: conda's requests meet no 404."""

import bz2
import io

import msgpack
import orjson
import pytest
import rattler
import zstandard

from packages_app.index import repodata
from packages_app.intake import archives
from packages_app.models import SubdirIndex

from ..labels import upload_with
from ..packages import upload, wait_for_index
from ..published import body, unzstd

pytestmark = pytest.mark.django_db(transaction=True)

EMPTY = {
    "packages": {},
    "packages.conda": {},
    "removed": [],
    "repodata_version": 1,
}


def documents(client, base, subdir):
    """Every index file of ``base/subdir``, each read as its client reads it."""
    url = f"{base}/{subdir}"
    answers = {name: client.get(f"{url}/{name}") for name in repodata.INDEX_FILES}
    for name, answer in answers.items():
        assert answer.status_code == 200, (url, name, answer.status_code)
        assert answer["Content-Type"] == repodata.CONTENT_TYPES[name]
    read = {name: body(answer) for name, answer in answers.items()}
    return {
        "repodata.json": orjson.loads(read["repodata.json"]),
        "repodata.json.zst": orjson.loads(unzstd(read["repodata.json.zst"])),
        "repodata.json.bz2": orjson.loads(bz2.decompress(read["repodata.json.bz2"])),
        "current_repodata.json": orjson.loads(read["current_repodata.json"]),
        "current_repodata.json.zst": orjson.loads(unzstd(read["current_repodata.json.zst"])),
        "shard index": msgpack.unpackb(
            zstandard.ZstdDecompressor()
            .stream_reader(io.BytesIO(read["repodata_shards.msgpack.zst"]))
            .read()
        ),
    }


@pytest.fixture
def noarch_only(client_for, public_channel, packages):
    path = packages.make("tool", "1.0", "noarch")
    assert upload(client_for("owner"), public_channel.name, path).status_code == 201
    wait_for_index(public_channel, "noarch")
    return public_channel, path


def test_every_platform_subdir_answers_an_empty_valid_index(noarch_only, client_for, tmp_path):
    channel, _ = noarch_only
    anonymous = client_for()
    subdirs = sorted(archives.SUBDIRS - {"noarch"})
    assert not SubdirIndex.objects.filter(channel=channel, subdir__in=subdirs).exists()

    for subdir in subdirs:
        found = documents(anonymous, f"/{channel.name}", subdir)

        for name in ("repodata.json", "repodata.json.zst", "repodata.json.bz2",
                     "current_repodata.json", "current_repodata.json.zst"):  # fmt: skip
            assert found[name] == {"info": {"subdir": subdir}, **EMPTY}, (subdir, name)
        index = found["shard index"]
        assert (index["version"], index["shards"]) == (1, {})
        assert index["info"]["subdir"] == subdir
    raw = body(anonymous.get(f"/{channel.name}/win-64/repodata.json"))
    (tmp_path / "repodata.json").write_bytes(raw)
    rattler.RepoData.from_path(tmp_path / "repodata.json")  # rattler reads it


def test_an_empty_subdir_is_revalidated_with_a_304(noarch_only, client_for):
    channel, _ = noarch_only
    anonymous = client_for()
    for name in repodata.INDEX_FILES:
        url = f"/{channel.name}/osx-arm64/{name}"
        first = anonymous.get(url)
        again = anonymous.get(url)
        assert first["ETag"] == again["ETag"]  # the same in every answer
        assert first["ETag"].startswith('"') and not first["ETag"].startswith("W/")
        assert first["Cache-Control"] == "public, no-cache"

        revalidated = anonymous.get(url, HTTP_IF_NONE_MATCH=first["ETag"])

        assert revalidated.status_code == 304, name
        assert revalidated["ETag"] == first["ETag"]
        head = anonymous.head(url)
        assert head.status_code == 200 and head["Content-Length"] == first["Content-Length"]


def test_each_channel_serves_the_same_empty_subdir(client_for, public_channel, private_channel):
    member = client_for("member")
    public = member.get(f"/{public_channel.name}/linux-aarch64/repodata.json.zst")
    private = member.get(f"/{private_channel.name}/linux-aarch64/repodata.json.zst")

    assert public.status_code == private.status_code == 200
    assert public["ETag"] == private["ETag"]
    assert private["Cache-Control"] == "private, no-cache"


def test_a_private_channel_stays_hidden_where_it_is_empty(client_for, private_channel):
    for path in ("linux-64/repodata.json", "linux-64/current_repodata.json.zst", "notices.json"):
        url = f"/{private_channel.name}/{path}"
        anonymous = client_for().get(url)
        outsider = client_for("outsider").get(url)
        missing = client_for("outsider").get(f"/no-such-channel/{path}")

        assert (anonymous.status_code, outsider.status_code) == (401, 404), path
        # Exactly as a channel that does not exist.
        expected = missing.json()["detail"].replace("no-such-channel", private_channel.name)
        assert outsider.json()["detail"] == expected, path
        assert client_for("member").get(url).status_code == 200, path


def test_a_used_label_answers_for_every_subdir_and_an_unused_one_does_not(
    client_for, public_channel, packages
):
    beta = packages.make("tool", "2.0", "linux-64")
    assert upload_with(client_for("owner"), public_channel, beta, "label=dev").status_code == 201
    wait_for_index(public_channel, "linux-64", label="dev")
    anonymous = client_for()

    found = documents(anonymous, f"/{public_channel.name}/label/dev", "win-64")
    assert found["repodata.json"] == {"info": {"subdir": "win-64"}, **EMPTY}
    assert anonymous.get(f"/{public_channel.name}/label/dev/notices.json").status_code == 200

    for path in ("win-64/repodata.json", "notices.json"):
        unused = anonymous.get(f"/{public_channel.name}/label/nightly/{path}")
        assert unused.status_code == 404, path


def test_notices_json_is_an_empty_list_of_notices(client_for, public_channel):
    anonymous = client_for()

    response = anonymous.get(f"/{public_channel.name}/notices.json")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert orjson.loads(response.content) == {"notices": []}
    again = anonymous.get(
        f"/{public_channel.name}/notices.json", HTTP_IF_NONE_MATCH=response["ETag"]
    )
    assert again.status_code == 304


def test_what_conda_asks_for_finds_no_404(noarch_only, client_for, tokens):
    """The requests conda 26.7's classic solver sends, in its order
    (shared/reference/client-protocols.md), for a channel with packages in noarch only."""
    channel, path = noarch_only
    channel.private = True
    channel.save()
    conda = client_for()
    base = f"/t/{tokens['member']}/{channel.name}"
    requests = [f"{base}/notices.json"]
    for subdir in ("linux-64", "noarch"):
        requests += [
            f"{base}/{subdir}/current_repodata.json.zst",
            f"{base}/{subdir}/current_repodata.json",
            f"{base}/{subdir}/repodata.json.zst",
        ]

    answers = {url: conda.get(url) for url in requests}

    assert {url: a.status_code for url, a in answers.items()} == dict.fromkeys(requests, 200)
    listed = orjson.loads(unzstd(body(answers[f"{base}/noarch/current_repodata.json.zst"])))
    assert list(listed["packages.conda"]) == [path.name]
