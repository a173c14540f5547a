"""Yanking a package file: out of every published index form, still downloadable by URL."""

import asyncio
import json
from types import SimpleNamespace

import orjson
import pytest
import rattler
from pytest_django.asserts import assertContains

from accounts.models import ApiToken, AuditEvent
from packages_app import runner
from packages_app.index import bz2_refresh
from packages_app.index import records as index_records
from packages_app.models import PackageFile

from ..clients import solve
from ..index.test_incremental_index import from_scratch
from ..packages import sha256_of, upload, wait_for_index
from ..published import body, published_forms

pytestmark = pytest.mark.django_db(transaction=True)


def publish(client_for, channel, *paths):
    owner = client_for("owner")
    for path in paths:
        assert upload(owner, channel.name, path).status_code == 201
    for subdir in {path.parent.name for path in paths}:
        wait_for_index(channel, subdir)


def yank(client, channel, path, reason="broken: crashes on import"):
    url = f"/api/v1/yank/{channel.name}/{path.parent.name}/{path.name}"
    return client.post(url, {"reason": reason}, format="json")


def unyank(client, channel, path):
    return client.post(f"/api/v1/unyank/{channel.name}/{path.parent.name}/{path.name}")


def settle(channel, subdir):
    wait_for_index(channel, subdir)
    runner.wait_for_background_work()  # the .bz2 follows the rebuild
    bz2_refresh.refresh_bz2(channel.pk, subdir)


@pytest.fixture
def two_versions(client_for, public_channel, packages):
    old = packages.make("demo", "1.0", "linux-64")
    new = packages.make("demo", "2.0", "linux-64")
    other = packages.make("other", "1.0", "linux-64", extension=".tar.bz2")
    publish(client_for, public_channel, old, new, other)
    return old, new, other


def test_it_lists_a_yanked_file_as_removed_in_every_published_form(
    client_for, public_channel, two_versions
):
    old, new, other = two_versions
    owner = client_for("owner")

    response = yank(owner, public_channel, new)
    settle(public_channel, "linux-64")

    assert response.status_code == 200, response.content
    assert response.json()["yanked"] is True
    assert response.json()["yank_reason"] == "broken: crashes on import"
    forms = published_forms(owner, public_channel, "linux-64")
    assert set(forms) == {"repodata.json", "repodata.json.zst", "repodata.json.bz2", "shards"}
    for form, (listed, removed) in forms.items():
        assert listed == {old.name, other.name}, form
        assert removed == [new.name], form


def test_it_still_serves_a_yanked_file_by_its_url(client, client_for, public_channel, two_versions):
    _, new, _ = two_versions
    assert yank(client_for("maintainer"), public_channel, new).status_code == 200
    wait_for_index(public_channel, "linux-64")

    response = client.get(f"/{public_channel.name}/linux-64/{new.name}")

    assert response.status_code == 200
    assert body(response) == new.read_bytes()


def test_unyanking_puts_the_file_back(client_for, public_channel, two_versions):
    old, new, other = two_versions
    owner = client_for("owner")
    assert yank(owner, public_channel, new).status_code == 200
    settle(public_channel, "linux-64")

    response = unyank(owner, public_channel, new)
    settle(public_channel, "linux-64")

    assert response.status_code == 200
    assert (response.json()["yanked"], response.json()["yank_reason"]) == (False, "")
    for form, (listed, removed) in published_forms(owner, public_channel, "linux-64").items():
        assert listed == {old.name, new.name, other.name}, form
        assert removed == [], form


def test_a_yanked_and_rebuilt_index_matches_one_built_from_scratch(
    client_for, public_channel, two_versions, packages
):
    old, new, other = two_versions
    owner = client_for("owner")
    only = packages.make("lonely", "1.0", "linux-64")
    publish(client_for, public_channel, only)
    for path in (new, other, only):
        assert yank(owner, public_channel, path).status_code == 200
    wait_for_index(public_channel, "linux-64")
    assert unyank(owner, public_channel, other).status_code == 200
    wait_for_index(public_channel, "linux-64")

    served = body(owner.get(f"/{public_channel.name}/linux-64/repodata.json"))

    assert served == from_scratch(public_channel, "linux-64")
    assert orjson.loads(served)["removed"] == sorted([new.name, only.name])
    # A name whose every file is yanked keeps a shard: it lists them as removed.
    _, shard_removed = published_forms(owner, public_channel, "linux-64")["shards"]
    assert shard_removed == sorted([new.name, only.name])

    index_records.record_sets.clear()  # a new worker: no cached records
    assert owner.post(f"/api/v1/reindex/{public_channel.name}/linux-64").status_code == 202
    wait_for_index(public_channel, "linux-64")
    assert body(owner.get(f"/{public_channel.name}/linux-64/repodata.json")) == served


def test_a_replaced_file_is_no_longer_yanked(client_for, public_channel, two_versions, packages):
    _, new, _ = two_versions
    owner = client_for("owner")
    assert yank(owner, public_channel, new).status_code == 200
    replacement = packages.make("demo", "2.0", "linux-64", summary="fixed")

    assert upload(owner, public_channel.name, replacement, force=True).status_code == 201
    wait_for_index(public_channel, "linux-64")

    assert not PackageFile.objects.get(filename=new.name).yanked
    served = orjson.loads(body(owner.get(f"/{public_channel.name}/linux-64/repodata.json")))
    assert new.name in served["packages.conda"] and served["removed"] == []


# Who may yank ------------------------------------------------------------------------------


def test_a_member_may_not_yank(client_for, private_channel, packages):
    path = packages.make("tool", "1.0", "linux-64")
    publish(client_for, private_channel, path)

    response = yank(client_for("member"), private_channel, path)

    assert response.status_code == 403
    assert "may not yank packages" in response.json()["detail"]
    assert unyank(client_for("member"), private_channel, path).status_code == 403
    assert not PackageFile.objects.get(filename=path.name).yanked


def test_an_outsider_finds_no_private_channel_to_yank_in(client_for, private_channel, packages):
    path = packages.make("tool", "1.0", "linux-64")
    publish(client_for, private_channel, path)
    missing = yank(client_for("outsider"), SimpleNamespace(name="no-such"), path)

    response = yank(client_for("outsider"), private_channel, path)

    assert response.status_code == 404
    assert (
        response.json()["detail"].replace(private_channel.name, "no-such")
        == (missing.json()["detail"])
    )
    assert unyank(client_for("outsider"), private_channel, path).status_code == 404
    assert yank(client_for(), private_channel, path).status_code == 401


def test_a_read_only_token_may_not_yank(client_for, users, public_channel, two_versions):
    _, new, _ = two_versions
    _, secret = ApiToken.create_for(users["owner"], "ci-read", read_only=True)

    response = yank(client_for(secret=secret), public_channel, new)

    assert response.status_code == 403
    assert response.json()["detail"] == "This token is read-only."


def test_it_asks_for_a_reason(client_for, public_channel, two_versions):
    _, new, _ = two_versions
    owner = client_for("owner")

    missing = yank(owner, public_channel, new, reason="  ")
    too_long = yank(owner, public_channel, new, reason="x" * 501)
    not_json_object = owner.post(
        f"/api/v1/yank/{public_channel.name}/linux-64/{new.name}", ["a"], format="json"
    )

    assert missing.status_code == too_long.status_code == not_json_object.status_code == 400
    assert "Give a reason" in missing.json()["reason"][0]
    assert "at most 500" in too_long.json()["reason"][0]
    assert not PackageFile.objects.get(filename=new.name).yanked


def test_it_answers_404_for_a_file_the_channel_does_not_have(client_for, public_channel):
    response = client_for("owner").post(
        f"/api/v1/yank/{public_channel.name}/linux-64/absent-1.0-0.conda",
        {"reason": "x"},
        format="json",
    )

    assert response.status_code == 404
    assert "absent-1.0-0.conda" in response.json()["detail"]


def test_yanking_and_unyanking_are_audited(client_for, users, public_channel, two_versions):
    _, new, _ = two_versions
    assert yank(client_for("maintainer"), public_channel, new).status_code == 200
    assert unyank(client_for("owner"), public_channel, new).status_code == 200

    events = AuditEvent.objects.filter(action__in=["package.yanked", "package.unyanked"])
    assert [
        (e.action, e.actor, e.channel, e.details) for e in events.order_by("created_at", "pk")
    ] == [
        (
            "package.yanked",
            users["maintainer"],
            public_channel,
            {"subdir": "linux-64", "filename": new.name, "reason": "broken: crashes on import"},
        ),
        (
            "package.unyanked",
            users["owner"],
            public_channel,
            {"subdir": "linux-64", "filename": new.name},
        ),
    ]


# The web pages -----------------------------------------------------------------------------


def page_url(channel, name):
    return f"/{channel.name}/packages/{name}/"


def yank_page_url(channel, path):
    return f"/{channel.name}/packages/demo/files/{path.parent.name}/{path.name}/yank/"


def test_the_package_page_yanks_and_shows_the_reason(client, users, public_channel, two_versions):
    _, new, _ = two_versions
    client.force_login(users["maintainer"])
    assertContains(client.get(page_url(public_channel, "demo")), f'aria-label="Yank {new.name}"')

    response = client.post(yank_page_url(public_channel, new), {"reason": "wrong ABI"}, follow=True)

    assertContains(response, f"Yanked linux-64/{new.name}")
    assertContains(
        response, '<span class="badge error">yanked</span><div class="small">wrong ABI</div>'
    )
    matrix = response.content.decode().split('id="versions"')[1].split('id="files"')[0]
    assert '<code>h1234_0</code> <span class="badge error">yanked</span>' in matrix
    assertContains(response, f'aria-label="Un-yank {new.name}"')
    assert PackageFile.objects.get(filename=new.name).yank_reason == "wrong ABI"


def test_the_package_page_unyanks(client, users, client_for, public_channel, two_versions):
    _, new, _ = two_versions
    assert yank(client_for("owner"), public_channel, new).status_code == 200
    client.force_login(users["owner"])

    response = client.post(yank_page_url(public_channel, new), {"unyank": "1"}, follow=True)

    assertContains(response, f"Un-yanked linux-64/{new.name}")
    assert not PackageFile.objects.get(filename=new.name).yanked


def test_the_package_page_refuses_a_yank_without_reason(
    client, users, public_channel, two_versions
):
    _, new, _ = two_versions
    client.force_login(users["owner"])

    response = client.post(yank_page_url(public_channel, new), {"reason": ""})

    assertContains(response, "was not yanked: Give a reason", status_code=400)
    assert not PackageFile.objects.get(filename=new.name).yanked


def test_the_package_page_offers_no_yank_to_members_and_refuses_theirs(
    client, users, private_channel, client_for, packages
):
    path = packages.make("demo", "1.0", "linux-64")
    publish(client_for, private_channel, path)
    client.force_login(users["member"])

    page = client.get(page_url(private_channel, "demo"))
    refused = client.post(yank_page_url(private_channel, path), {"reason": "x"})
    client.force_login(users["outsider"])
    hidden = client.post(yank_page_url(private_channel, path), {"reason": "x"})

    assert page.status_code == 200 and "Yank" not in page.content.decode()
    assert (refused.status_code, hidden.status_code) == (403, 404)
    assert not PackageFile.objects.get(filename=path.name).yanked


# The real client ---------------------------------------------------------------------------


@pytest.mark.live
def test_rattler_does_not_choose_a_yanked_build_but_a_locked_url_still_installs(
    live_server_url, client_for, public_channel, packages, tmp_path
):
    old = packages.make("demo", "1.0", "linux-64")
    new = packages.make("demo", "2.0", "linux-64")
    publish(client_for, public_channel, old, new)
    channel_url = f"{live_server_url}/{public_channel.name}"
    locked = [
        r for r in solve(channel_url, ["demo"], tmp_path / "before") if r.name.normalized == "demo"
    ]
    assert [str(r.version) for r in locked] == ["2.0"]

    assert yank(client_for("owner"), public_channel, new).status_code == 200
    wait_for_index(public_channel, "linux-64")

    chosen = solve(channel_url, ["demo"], tmp_path / "after")
    assert [str(r.version) for r in chosen if r.name.normalized == "demo"] == ["1.0"]
    with pytest.raises(Exception, match="demo"):
        solve(channel_url, ["demo ==2.0"], tmp_path / "pinned")

    # A locked environment installs the record it recorded, by URL, without solving.
    prefix = tmp_path / "env"
    asyncio.run(rattler.install(locked, prefix, cache_dir=tmp_path / "pkgs", show_progress=False))
    installed = [json.loads(p.read_text()) for p in (prefix / "conda-meta").glob("demo-*.json")]
    assert [(r["version"], r["sha256"]) for r in installed] == [("2.0", sha256_of(new))]


# The admin ---------------------------------------------------------------------------------

PACKAGE_FILES = "/admin/packages_app/packagefile/"


def test_an_owner_yanks_and_unyanks_in_the_admin(client, users, public_channel, two_versions):
    old, new, _ = two_versions
    ids = [str(PackageFile.objects.get(filename=path.name).pk) for path in (old, new)]
    client.force_login(users["owner"])
    chosen = {"action": "yank_selected", "_selected_action": ids}

    asked = client.post(PACKAGE_FILES, chosen)
    refused = client.post(PACKAGE_FILES, {**chosen, "apply": "1", "reason": " "})
    done = client.post(PACKAGE_FILES, {**chosen, "apply": "1", "reason": "bad compiler"})

    assertContains(asked, 'name="reason"')
    assertContains(refused, "Give a reason")
    assert done.status_code == 302
    yanked = PackageFile.objects.filter(yank_reason="bad compiler")
    assert sorted(yanked.values_list("filename", flat=True)) == sorted([old.name, new.name])
    wait_for_index(public_channel, "linux-64")
    served = orjson.loads(body(client.get(f"/{public_channel.name}/linux-64/repodata.json")))
    assert served["removed"] == sorted([old.name, new.name])

    client.post(PACKAGE_FILES, {"action": "unyank_selected", "_selected_action": ids})

    assert not PackageFile.objects.filter(yanked_at__isnull=False).exists()
    assert AuditEvent.objects.filter(action="package.unyanked", actor=users["owner"]).count() == 2


def test_the_latest_version_is_the_newest_one_not_yanked(client_for, public_channel, two_versions):
    _, new, _ = two_versions
    owner = client_for("owner")
    api = f"/api/v1/channels/{public_channel.name}/packages/demo/"
    channeldata = f"/{public_channel.name}/channeldata.json"
    assert owner.get(api).json()["latest_version"] == "2.0"

    assert yank(owner, public_channel, new).status_code == 200

    assert owner.get(api).json()["latest_version"] == "1.0"
    assert orjson.loads(body(owner.get(channeldata)))["packages"]["demo"]["version"] == "1.0"
    search = owner.get("/api/v1/search?q=demo").json()["results"]
    assert [hit["latest_version"] for hit in search if hit["name"] == "demo"] == ["1.0"]

    assert unyank(owner, public_channel, new).status_code == 200

    assert owner.get(api).json()["latest_version"] == "2.0"
    assert orjson.loads(body(owner.get(channeldata)))["packages"]["demo"]["version"] == "2.0"


def test_a_package_with_every_file_yanked_still_names_its_latest_version(
    client_for, public_channel, two_versions
):
    old, new, _ = two_versions
    owner = client_for("owner")
    for path in (old, new):
        assert yank(owner, public_channel, path).status_code == 200

    assert (
        owner.get(f"/api/v1/channels/{public_channel.name}/packages/demo/").json()["latest_version"]
        == "2.0"
    )
