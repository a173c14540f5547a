"""current_repodata.json: each name's newest version and what those need, per subdir and
label, published with the other index files (packages_app/index/current.py)."""

import asyncio

import orjson
import pytest
import rattler

from packages_app.index import current, repodata
from packages_app.index.records import load
from packages_app.models import SubdirIndex

from ..labels import upload_with
from ..packages import upload, wait_for_index
from ..published import body, unzstd
from ..served import call

pytestmark = pytest.mark.django_db(transaction=True)


def current_of(client, channel, subdir, label=None):
    base = f"/{channel.name}" + (f"/label/{label}" if label else "") + f"/{subdir}"
    response = client.get(f"{base}/current_repodata.json")
    assert response.status_code == 200
    document = orjson.loads(body(response))
    compressed = client.get(f"{base}/current_repodata.json.zst")
    assert compressed.status_code == 200
    assert orjson.loads(unzstd(body(compressed))) == document
    return document


def listed(document):
    return set(document["packages"]) | set(document["packages.conda"])


def put(client, channel, *paths):
    for path in paths:
        response = upload(client, channel.name, path)
        assert response.status_code == 201, response.content
    for subdir in {path.parent.name for path in paths}:
        wait_for_index(channel, subdir)


@pytest.fixture
def layered(client_for, public_channel, packages):
    """app 2.0 needs lib <2 (lib 1.5 needs base 1.*); app 1.0 and lib 1.0 are older."""
    make = packages.make
    paths = {
        "app-1.0": make("app", "1.0", "linux-64", depends=["lib"]),
        "app-2.0": make("app", "2.0", "linux-64", depends=["lib <2", "python >=3.8"]),
        "lib-1.0": make("lib", "1.0", "linux-64"),
        "lib-1.5": make("lib", "1.5", "linux-64", depends=["base 1.*"]),
        "lib-2.0": make("lib", "2.0", "linux-64", depends=["base >=2"]),
        "base-1.0": make("base", "1.0", "linux-64"),
        "base-1.1-a": make("base", "1.1", "linux-64", build="ha_0"),
        "base-1.1-b": make("base", "1.1", "linux-64", build="hb_1", build_number=1),
        "base-2.0": make("base", "2.0", "linux-64"),
    }
    put(client_for("owner"), public_channel, *paths.values())
    return public_channel, paths


def names(paths, *keys):
    return {paths[key].name for key in keys}


def test_it_keeps_every_build_of_each_names_newest_version(client_for, public_channel, packages):
    paths = {
        "tool-1.0": packages.make("tool", "1.0", "linux-64"),
        "tool-1.10-a": packages.make("tool", "1.10", "linux-64", build="ha_0"),
        "tool-1.10-b": packages.make("tool", "1.10", "linux-64", build="hb_0"),
        "tool-1.9": packages.make("tool", "1.9", "linux-64"),
        "other-0.1": packages.make("other", "0.1", "linux-64", extension=".tar.bz2"),
    }
    put(client_for("owner"), public_channel, *paths.values())

    document = current_of(client_for(), public_channel, "linux-64")

    assert listed(document) == names(paths, "tool-1.10-a", "tool-1.10-b", "other-0.1")
    assert document["info"] == {"subdir": "linux-64"}
    assert document["repodata_version"] == 1
    assert document["removed"] == []
    full = orjson.loads(body(client_for().get(f"/{public_channel.name}/linux-64/repodata.json")))
    for key in ("packages", "packages.conda"):
        for filename, record in document[key].items():
            assert record == full[key][filename]  # the records repodata.json has


def test_it_adds_the_newest_older_version_a_dependency_needs(layered, client_for):
    channel, paths = layered

    document = current_of(client_for(), channel, "linux-64")

    # app 2.0 needs lib <2: lib 1.5 (not 1.0); lib 1.5 needs base 1.*: both builds of 1.1.
    expected = names(paths, "app-2.0", "lib-2.0", "lib-1.5", "base-2.0", "base-1.1-a", "base-1.1-b")
    assert listed(document) == expected


def test_it_follows_dependencies_until_nothing_more_is_needed(client_for, public_channel, packages):
    make = packages.make
    paths = {
        "top-1.0": make("top", "1.0", "linux-64", depends=["mid 1.* h1234_0"]),  # a build too
        "mid-1.0": make("mid", "1.0", "linux-64", depends=["low 1.*"]),
        "mid-2.0": make("mid", "2.0", "linux-64"),
        "low-1.0": make("low", "1.0", "linux-64", depends=["leaf <3"]),
        "low-2.0": make("low", "2.0", "linux-64"),
        "leaf-2.0": make("leaf", "2.0", "linux-64"),
        "leaf-3.0": make("leaf", "3.0", "linux-64"),
        "leaf-1.0": make("leaf", "1.0", "linux-64"),
    }
    put(client_for("owner"), public_channel, *paths.values())

    document = current_of(client_for(), public_channel, "linux-64")

    expected = names(
        paths, "top-1.0", "mid-2.0", "mid-1.0", "low-2.0", "low-1.0", "leaf-3.0", "leaf-2.0"
    )
    assert listed(document) == expected


def test_it_leaves_yanked_files_out_and_lists_them_as_removed(layered, client_for):
    channel, paths = layered
    owner = client_for("owner")
    yanked = paths["lib-1.5"]
    response = owner.post(
        f"/api/v1/yank/{channel.name}/linux-64/{yanked.name}", {"reason": "bad"}, format="json"
    )
    assert response.status_code == 200, response.content
    wait_for_index(channel, "linux-64")

    document = current_of(client_for(), channel, "linux-64")

    # lib <2 now falls to lib 1.0, which needs no base 1.*.
    assert listed(document) == names(paths, "app-2.0", "lib-2.0", "lib-1.0", "base-2.0")
    assert document["removed"] == [yanked.name]


def test_it_reflects_each_change_at_once(client_for, public_channel, packages):
    owner, anonymous = client_for("owner"), client_for()
    first = packages.make("tool", "1.0", "noarch")
    put(owner, public_channel, first)
    assert listed(current_of(anonymous, public_channel, "noarch")) == {first.name}

    newer = packages.make("tool", "1.1", "noarch")
    put(owner, public_channel, newer)
    assert listed(current_of(anonymous, public_channel, "noarch")) == {newer.name}

    url = f"/api/v1/yank/{public_channel.name}/noarch/{newer.name}"
    assert owner.post(url, {"reason": "bad"}, format="json").status_code == 200
    wait_for_index(public_channel, "noarch")
    assert listed(current_of(anonymous, public_channel, "noarch")) == {first.name}

    assert owner.post(f"/api/v1/unyank/{public_channel.name}/noarch/{newer.name}").status_code
    wait_for_index(public_channel, "noarch")
    assert listed(current_of(anonymous, public_channel, "noarch")) == {newer.name}

    deleted = owner.delete(f"/api/v1/delete/{public_channel.name}/noarch/{newer.name}")
    assert deleted.status_code in (200, 204), deleted.content
    wait_for_index(public_channel, "noarch")
    assert listed(current_of(anonymous, public_channel, "noarch")) == {first.name}


def test_an_incremental_build_publishes_what_a_build_from_scratch_does(layered, client_for):
    channel, paths = layered
    owner = client_for("owner")
    url = f"/api/v1/yank/{channel.name}/linux-64/{paths['base-1.1-b'].name}"
    assert owner.post(url, {"reason": "bad"}, format="json").status_code == 200
    index = wait_for_index(channel, "linux-64")
    incremental = current_of(client_for(), channel, "linux-64")

    records = repodata.RecordSet("linux-64")
    load(index, records, None)
    assert orjson.loads(current.current_repodata_json(records)) == incremental


def test_each_label_has_its_own(client_for, public_channel, packages):
    owner, anonymous = client_for("owner"), client_for()
    stable = packages.make("tool", "1.0", "linux-64")
    beta = packages.make("tool", "2.0", "linux-64")
    assert upload(owner, public_channel.name, stable).status_code == 201
    assert upload_with(owner, public_channel, beta, "label=dev").status_code == 201
    wait_for_index(public_channel, "linux-64")
    wait_for_index(public_channel, "linux-64", label="dev")

    assert listed(current_of(anonymous, public_channel, "linux-64")) == {stable.name}
    assert listed(current_of(anonymous, public_channel, "linux-64", "dev")) == {beta.name}
    assert listed(current_of(anonymous, public_channel, "noarch", "dev")) == set()


def test_it_prefers_the_conda_file_and_keeps_the_other_ones_md5(
    client_for, public_channel, packages, tmp_path
):
    conda = packages.make("tool", "1.0", "linux-64")
    tar_bz2 = packages.make("tool", "1.0", "linux-64", extension=".tar.bz2")
    put(client_for("owner"), public_channel, conda, tar_bz2)

    document = current_of(client_for(), public_channel, "linux-64")

    assert listed(document) == {conda.name}
    full = orjson.loads(body(client_for().get(f"/{public_channel.name}/linux-64/repodata.json")))
    legacy = document["packages.conda"][conda.name]["legacy_bz2_md5"]
    assert legacy == full["packages"][tar_bz2.name]["md5"]


def test_a_subdir_without_packages_publishes_an_empty_one(client_for, public_channel):
    index = SubdirIndex.objects.get(channel=public_channel, subdir="noarch")
    assert repodata.CURRENT_REPODATA in index.published_files

    document = current_of(client_for(), public_channel, "noarch")

    assert document == {
        "info": {"subdir": "noarch"},
        "packages": {},
        "packages.conda": {},
        "removed": [],
        "repodata_version": 1,
    }


@pytest.mark.live
def test_a_solve_with_it_alone_finds_each_names_newest_version(
    live_server_url, client_for, public_channel, packages, tmp_path
):
    make = packages.make
    paths = [
        make("app", "2.0", "linux-64", depends=["lib <2", "helper"]),
        make("app", "1.0", "linux-64", depends=["lib"]),
        make("lib", "1.5", "linux-64", depends=["base 1.*"]),
        make("lib", "2.0", "linux-64", depends=["base >=2"]),
        make("lib", "1.0", "linux-64"),
        make("base", "1.0", "linux-64"),
        make("base", "2.0", "linux-64"),
        make("helper", "0.5", "noarch", depends=["base"]),
        make("helper", "0.4", "noarch"),
    ]
    put(client_for("owner"), public_channel, *paths)
    static = tmp_path / "static-channel"
    for subdir in ("linux-64", "noarch"):
        url = f"{live_server_url}/{public_channel.name}/{subdir}/current_repodata.json"
        status, served = call("GET", url)
        assert status == 200
        (static / subdir).mkdir(parents=True)
        # A channel of just current_repodata.json, as conda's first attempt sees it.
        (static / subdir / "repodata.json").write_bytes(served)
        rattler.RepoData.from_path(static / subdir / "repodata.json")  # rattler reads it

    newest = {"app": "2.0", "lib": "2.0", "base": "2.0", "helper": "0.5"}

    async def solve(spec):
        gateway = rattler.Gateway(cache_dir=tmp_path / "cache")
        return await rattler.solve(
            [static.as_uri()], [spec], gateway=gateway, platforms=["linux-64", "noarch"]
        )

    for name, version in newest.items():
        solved = asyncio.run(solve(f"{name} =={version}"))
        chosen = {r.name.normalized: str(r.version) for r in solved}
        assert chosen[name] == version, (name, chosen)
    app = {r.name.normalized: str(r.version) for r in asyncio.run(solve("app"))}
    assert app == {"app": "2.0", "lib": "1.5", "base": "1.0", "helper": "0.5"}


def test_only_changed_names_are_worked_out_again(client_for, public_channel, packages):
    # The record set is loaded here, in this process, as a worker keeps it between
    # rebuilds (in services mode the rebuilds themselves run in the Celery worker).
    owner = client_for("owner")
    put(owner, public_channel, packages.make("one", "1.0"), packages.make("two", "1.0"))
    index = SubdirIndex.objects.get(channel=public_channel, subdir="noarch")
    records = repodata.RecordSet("noarch")
    load(index, records, None)
    current.current_repodata_json(records)
    kept = records.newest["one"]

    put(owner, public_channel, packages.make("two", "2.0"))
    load(index, records, ["two"])  # what a rebuild does with the names changed since
    current.current_repodata_json(records)

    assert records.newest["one"] is kept  # not worked out again
    assert records.newest["two"].kept == ("two-2.0-0.conda",)


def test_a_newest_version_with_track_features_brings_the_newest_without(db):
    # No build tool here writes track_features, so the records are written directly.
    def row(version, build, **fields):
        record = {"name": "blas", "version": version, "build": build, "build_number": 0,
                  "depends": [], "subdir": "linux-64", **fields}  # fmt: skip
        filename = f"blas-{version}-{build}.conda"
        return filename, "blas", orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode(), None

    records = repodata.RecordSet("linux-64")
    records.replace_names([], [
        row("2.0", "mkl", track_features="mkl"), row("1.5", "plain"), row("1.0", "plain"),
    ])  # fmt: skip

    document = orjson.loads(current.current_repodata_json(records))

    assert set(document["packages.conda"]) == {"blas-2.0-mkl.conda", "blas-1.5-plain.conda"}
