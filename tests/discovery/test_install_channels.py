"""The channels a package needs, found by solving its dependencies with py-rattler."""

import time

import pytest
from django.core.cache import cache
from pytest_django.asserts import assertContains, assertNotContains

from channels_app import related
from channels_app.lifecycle import create_channel
from packages_app import runner
from packages_app.discovery import install_channels

from ..clients import installed_names, solve_and_install
from ..packages import eventually, multipart_body, publish, wait_for_index

uploads_and_indexes = pytest.mark.django_db(transaction=True)
CONDA_FORGE = "https://conda.anaconda.org/conda-forge"


def install_of(client, channel, name, **params):
    channel_name = getattr(channel, "name", channel)
    return client.get(f"/api/v1/channels/{channel_name}/packages/{name}/install/", params)


@pytest.fixture(autouse=True)
def no_earlier_solves():
    """Solves are cached in Redis across tests and runs; each test starts without them."""
    cache.clear()


@pytest.fixture
def shared(users):
    return create_channel(users["owner"], "shared-libs", private=False)


@pytest.fixture
def extras(users):
    return create_channel(users["owner"], "extras", private=False)


@pytest.fixture
def app_needs_shared(client_for, public_channel, shared, packages):
    """`app` (open-tools) depends on `libthere` (shared-libs, its related channel)."""
    publish(client_for, shared, packages.make("libthere"))
    publish(client_for, public_channel, packages.make("app", depends=["libthere"]))
    related.replace(public_channel, [(shared, "")])


@uploads_and_indexes
def test_it_names_the_related_channel_that_provides_a_dependency(
    client_for, public_channel, shared, extras, packages
):
    publish(client_for, shared, packages.make("libthere", "2.0"), packages.make("libthere", "1.0"))
    publish(client_for, extras, packages.make("unused", "1.0"))
    publish(client_for, public_channel, packages.make("app", depends=["libthere <2"]))
    related.replace(public_channel, [(extras, ""), (shared, "")])

    response = install_of(client_for(), public_channel, "app", platform="linux-64")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["checked"] is True
    assert [c["name"] for c in body["channels"]] == ["open-tools", "shared-libs"]
    assert {(p["name"], p["version"], p["channel"]) for p in body["provided"]} == {
        ("app", "1.0.0", "open-tools"),
        ("libthere", "1.0", "shared-libs"),
    }
    assert body["install"]["micromamba"] == (
        "micromamba create -n my-env -c http://testserver/open-tools "
        "-c http://testserver/shared-libs app"
    )
    assert "pixi init my-project -c http://testserver/open-tools" in body["install"]["pixi"]
    assert body["problem"] == ""


@uploads_and_indexes
def test_it_keeps_the_related_order_and_leaves_out_channels_not_needed(
    client_for, users, public_channel, shared, extras, packages
):
    unused = create_channel(users["owner"], "unused", private=False)
    publish(client_for, shared, packages.make("liba"))
    publish(client_for, extras, packages.make("libb"))
    publish(client_for, unused, packages.make("libc"))
    publish(client_for, public_channel, packages.make("app", depends=["libb", "liba"]))
    related.replace(public_channel, [(shared, ""), (unused, ""), (extras, "")])

    body = install_of(client_for(), public_channel, "app").json()

    assert body["platform"] == "linux-64"  # a noarch package is solved for linux-64
    assert [c["name"] for c in body["channels"]] == ["open-tools", "shared-libs", "extras"]
    assert body["install"]["conda"] == (
        "conda create -n my-env -c http://testserver/open-tools -c http://testserver/shared-libs "
        "-c http://testserver/extras app"
    )


@uploads_and_indexes
def test_it_never_uses_nor_names_a_private_related_channel_the_caller_cannot_read(
    client, client_for, users, public_channel, private_channel, packages
):
    publish(client_for, private_channel, packages.make("libsecret"))
    publish(client_for, public_channel, packages.make("app", depends=["libsecret >=1"]))
    related.replace(public_channel, [(private_channel, "")])

    outsider = install_of(client_for("outsider"), public_channel, "app")
    member = install_of(client_for("member"), public_channel, "app")
    client.force_login(users["outsider"])
    page = client.get(f"/{public_channel.name}/packages/app/")

    assert outsider.status_code == 200
    assert "private-team" not in outsider.content.decode()
    assert [c["name"] for c in outsider.json()["channels"]] == ["open-tools"]
    assert outsider.json()["problem"].startswith("No channel provides libsecret >=1.")
    assertNotContains(page, "private-team")
    assertContains(page, "No channel provides libsecret &gt;=1.")
    assert [c["name"] for c in member.json()["channels"]] == ["open-tools", "private-team"]
    assert member.json()["problem"] == ""


@uploads_and_indexes
def test_it_falls_back_to_the_declaration_when_an_external_channel_is_unreachable(
    client_for, public_channel, shared, packages
):
    publish(client_for, shared, packages.make("libthere"))
    publish(client_for, public_channel, packages.make("app", depends=["libthere", "numpy"]))
    related.replace(public_channel, [(shared, ""), (None, CONDA_FORGE)])

    body = install_of(client_for(), public_channel, "app").json()

    assert body["checked"] is False
    assert body["channels"] == [
        {"name": "open-tools", "url": "http://testserver/open-tools", "checked": True},
        {"name": "shared-libs", "url": "http://testserver/shared-libs", "checked": True},
        {"name": CONDA_FORGE, "url": CONDA_FORGE, "checked": False},
    ]
    assert {p["name"]: p["channel"] for p in body["provided"]} == {
        "libthere": "shared-libs",
        "numpy": CONDA_FORGE,
    }


@uploads_and_indexes
def test_it_leaves_out_an_unreachable_external_channel_the_solve_does_not_need(
    client_for, public_channel, shared, packages
):
    publish(client_for, shared, packages.make("libthere"))
    publish(client_for, public_channel, packages.make("app", depends=["libthere"]))
    related.replace(public_channel, [(None, CONDA_FORGE), (shared, "")])

    body = install_of(client_for(), public_channel, "app").json()

    assert body["checked"] is True
    assert [c["name"] for c in body["channels"]] == ["open-tools", "shared-libs"]


@uploads_and_indexes
def test_it_says_which_dependency_no_channel_provides(client_for, public_channel, shared, packages):
    publish(client_for, shared, packages.make("libfoo", "1.5"))
    publish(client_for, public_channel, packages.make("app", depends=["libfoo >=2"]))
    related.replace(public_channel, [(shared, "")])

    body = install_of(client_for(), public_channel, "app").json()

    assert body["checked"] is True
    assert body["problem"].startswith("No channel provides libfoo >=2.")
    assert "wharf.internal" not in body["problem"]
    assert body["provided"] == []


@uploads_and_indexes
def test_it_answers_bad_platforms_and_versions_and_hidden_channels_clearly(
    client_for, public_channel, private_channel, packages
):
    publish(client_for, public_channel, packages.make("app", "1.0", "linux-64"))
    publish(client_for, private_channel, packages.make("tool"))
    anonymous = client_for()

    unknown = install_of(anonymous, public_channel, "app", platform="amiga-68k")
    wrong = install_of(anonymous, public_channel, "app", platform="osx-arm64")
    missing_version = install_of(anonymous, public_channel, "app", version="9")
    missing = install_of(anonymous, public_channel, "nope")
    hidden = install_of(client_for("outsider"), private_channel, "tool")
    absent = install_of(client_for("outsider"), "nothing", "tool")

    assert unknown.status_code == 400 and "amiga-68k" in unknown.json()["detail"]
    assert wrong.status_code == 400 and "osx-arm64" in wrong.json()["detail"]
    assert missing_version.status_code == 400 and "'9'" in missing_version.json()["detail"]
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]
    assert hidden.status_code == absent.status_code == 404
    assert hidden.json()["detail"].replace("private-team", "nothing") == absent.json()["detail"]


@uploads_and_indexes
def test_it_solves_again_after_an_upload_to_a_related_channel(
    client_for, public_channel, shared, packages
):
    publish(client_for, public_channel, packages.make("app", depends=["libthere"]))
    related.replace(public_channel, [(shared, "")])
    before = install_of(client_for(), public_channel, "app").json()

    publish(client_for, shared, packages.make("libthere"))
    after = install_of(client_for(), public_channel, "app").json()

    assert "libthere" in before["problem"]
    assert [c["name"] for c in after["channels"]] == ["open-tools", "shared-libs"]


@uploads_and_indexes
def test_it_solves_once_for_callers_who_read_the_same_channels(
    client_for, public_channel, app_needs_shared, caplog
):
    caplog.set_level("INFO", logger="packages_app.discovery.install_channels")

    first = install_of(client_for(), public_channel, "app").json()
    second = install_of(client_for("outsider"), public_channel, "app").json()

    assert first == second
    assert len([r for r in caplog.records if r.getMessage().startswith("solved app")]) == 1


@uploads_and_indexes
def test_it_shows_the_solved_channels_on_the_package_page(
    client, client_for, public_channel, app_needs_shared
):
    response = client.get(f"/{public_channel.name}/packages/app/")

    section = response.content.decode().split('id="install-channels"')[1].split("</section>")[0]
    assert "micromamba create -n my-env -c http://testserver/open-tools" in section
    assert "-c http://testserver/shared-libs app" in section
    assert "libthere" in section and "shared-libs" in section


@pytest.mark.live
@uploads_and_indexes
def test_its_channel_list_installs_with_py_rattler_against_the_live_server(
    live_server_url, client_for, public_channel, shared, extras, packages, tmp_path, monkeypatch
):
    publish(client_for, shared, packages.make("libthere", "1.0", "linux-64"))
    publish(client_for, extras, packages.make("unused"))
    publish(client_for, public_channel, packages.make("app", depends=["libthere"]))
    related.replace(public_channel, [(extras, ""), (shared, "")])

    started = time.perf_counter()
    body = install_of(client_for(), public_channel, "app", platform="linux-64").json()
    seconds = time.perf_counter() - started
    channels = [f"{live_server_url}/{c['name']}" for c in body["channels"]]
    records, prefix = solve_and_install(channels, {}, tmp_path, monkeypatch, specs=["app"])

    assert channels == [f"{live_server_url}/open-tools", f"{live_server_url}/shared-libs"]
    assert installed_names(prefix) == ["app", "libthere"]
    assert seconds < 5, f"a solve of a small channel took {seconds:.2f} s"


@pytest.fixture
def app_needs_external(live_server_url, client_for, public_channel, shared, packages):
    """`app` (open-tools) depends on `libthere`, in shared-libs reached as an external
    channel over HTTP, as any other URL; returns that URL."""
    publish(client_for, shared, packages.make("libthere", "1.0", "linux-64"))
    publish(client_for, public_channel, packages.make("app", depends=["libthere"]))
    external = f"{live_server_url}/{shared.name}"
    related.replace(public_channel, [(None, external)])
    return external


@pytest.mark.live
@uploads_and_indexes
def test_it_solves_with_an_external_channel_that_answers(
    client_for, public_channel, app_needs_external
):
    external = app_needs_external

    body = install_of(client_for(), public_channel, "app", platform="linux-64").json()

    assert body["checked"] is True, body
    assert [c["name"] for c in body["channels"]] == ["open-tools", external]
    assert {p["name"]: p["channel"] for p in body["provided"]} == {
        "app": "open-tools",
        "libthere": external,
    }


def publish_to(client_for, channel, label, *paths):
    """Upload ``paths`` to the channel with ``label`` only, indexed."""
    owner = client_for("owner")
    for path in paths:
        data, content_type = multipart_body(path)
        url = f"/api/v1/upload/{channel.name}?label={label}"
        response = owner.generic("POST", url, data, content_type=content_type)
        assert response.status_code == 201, response.content
    for subdir in {path.parent.name for path in paths} | {"noarch"}:
        wait_for_index(channel, subdir, label=label)


@uploads_and_indexes
def test_a_package_only_in_a_label_is_solved_and_installed_from_that_label(
    client, client_for, public_channel, shared, packages
):
    publish(client_for, shared, packages.make("libthere"))
    related.replace(public_channel, [(shared, "")])
    publish_to(
        client_for, public_channel, "dev",
        packages.make("helper", "0.1", "linux-64"),
        packages.make("app", "2.0", "linux-64", depends=["helper", "libthere"]),
    )  # fmt: skip

    body = install_of(client_for(), public_channel, "app").json()
    page = client.get(f"/{public_channel.name}/packages/app/").content.decode()

    assert body["label"] == "dev"
    assert body["checked"] is True and body["problem"] == ""
    assert [(c["name"], c["url"]) for c in body["channels"]] == [
        ("open-tools", "http://testserver/open-tools/label/dev"),
        ("shared-libs", "http://testserver/shared-libs"),
    ]
    assert {(p["name"], p["channel"]) for p in body["provided"]} == {
        ("app", "open-tools"), ("helper", "open-tools"), ("libthere", "shared-libs"),
    }  # fmt: skip
    assert body["install"]["micromamba"] == (
        "micromamba create -n my-env -c http://testserver/open-tools/label/dev "
        "-c http://testserver/shared-libs app"
    )
    section = page.split('id="install-channels"')[1].split("</section>")[0]
    assert "with the label <strong>dev</strong>" in section
    assert "-c http://testserver/open-tools/label/dev -c http://testserver/shared-libs" in section


@uploads_and_indexes
def test_main_is_solved_unless_a_label_is_asked_for(client_for, public_channel, packages):
    publish(client_for, public_channel, packages.make("app", "1.0", "linux-64"))
    publish_to(client_for, public_channel, "dev", packages.make("app", "2.0", "linux-64"))
    anonymous = client_for()

    default = install_of(anonymous, public_channel, "app").json()
    dev = install_of(anonymous, public_channel, "app", label="dev").json()
    missing = install_of(anonymous, public_channel, "app", label="rc")

    assert default["label"] == "main"
    assert [(p["name"], p["version"]) for p in default["provided"]] == [("app", "1.0")]
    assert default["channels"][0]["url"] == "http://testserver/open-tools"
    assert dev["label"] == "dev"
    assert [(p["name"], p["version"]) for p in dev["provided"]] == [("app", "2.0")]
    assert missing.status_code == 400
    assert missing.json()["detail"] == "'app' has no file with the label 'rc' here."


@pytest.mark.live
@uploads_and_indexes
def test_an_old_probe_answers_at_once_and_is_probed_again_in_the_background(
    client_for, public_channel, app_needs_external
):
    external = app_needs_external
    key = install_channels.probe_key(external)
    # Known as down 6 minutes ago; it is up now.
    cache.set(key, (False, time.time() - 360), 3600)

    stale = install_of(client_for(), public_channel, "app", platform="linux-64").json()
    eventually(lambda: cache.get(key)[0] is True)
    fresh = install_of(client_for(), public_channel, "app", platform="linux-64").json()

    assert stale["checked"] is False  # the old answer, given without waiting for a probe
    assert fresh["checked"] is True, fresh
    assert [c["name"] for c in fresh["channels"]] == ["open-tools", external]


@pytest.mark.live
@uploads_and_indexes
def test_a_recent_probe_is_not_repeated(live_server_url, client_for, public_channel, packages):
    publish(client_for, public_channel, packages.make("app"))
    external = f"{live_server_url}/elsewhere"
    related.replace(public_channel, [(None, external)])
    key = install_channels.probe_key(external)
    known = (False, time.time() - 60)
    cache.set(key, known, 3600)

    install_of(client_for(), public_channel, "app")
    runner.wait_for_background_work()

    assert cache.get(key) == known
