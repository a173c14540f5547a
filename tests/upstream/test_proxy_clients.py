"""Proxy and mirror channels end to end: py-rattler solves and installs through a live
Wharf whose channels proxy or mirror a static channel directory and a private channel of
another Wharf."""

import json

import pytest
import rattler_build
from django.db import transaction

from channels_app.lifecycle import create_channel
from channels_app.sources import attach
from packages_app.models import MirrorRun, PackageFile

from ..clients import installed_names, solve_and_install
from ..packages import wait_for_index
from ..served import call, get
from .test_mirror import make_mirror

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def test_py_rattler_installs_through_a_proxy_of_a_static_channel(
    live_server_url, static_upstream, proxy_of, tmp_path, monkeypatch
):
    static_upstream.add("base", "2.3", extension=".tar.bz2")
    static_upstream.add("tool", "1.0", "linux-64", depends=["base >=2"])
    static_upstream.add("helper", "0.5")
    static_upstream.index()
    channel = proxy_of(static_upstream.url)

    records, prefix = solve_and_install([f"{live_server_url}/forge"], {}, tmp_path, monkeypatch)

    assert sorted(r.name.normalized for r in records) == ["base", "helper", "tool"]
    assert installed_names(prefix) == ["base", "helper", "tool"]
    kept = PackageFile.objects.filter(channel=channel).values_list("name", flat=True)
    assert sorted(kept) == ["base", "helper", "tool"]  # fetched once, now Wharf's


def test_a_private_upstream_is_proxied_with_credentials_no_client_sees(
    live_server_url, private_channel, tokens, packages, proxy_of, upstream_networks, tmp_path,
    monkeypatch,
):  # fmt: skip
    tool = packages.make("tool", "1.0", "linux-64", depends=["helper"])
    helper = packages.make("helper", "0.5", "noarch")
    rattler_build.upload_package_to_prefix(
        [str(tool), str(helper)], live_server_url, private_channel.name, api_key=tokens["owner"]
    )
    wait_for_index(private_channel, "linux-64")
    wait_for_index(private_channel, "noarch")
    secret = tokens["maintainer"]  # the upstream's credential, kept by Wharf
    proxy_of(
        f"{live_server_url}/{private_channel.name}", name="team-copy", private=True, token=secret
    )
    reader = tokens["owner"]  # who reads the proxy channel (its owner)

    auth = {"127.0.0.1": {"BearerToken": reader}}
    _, prefix = solve_and_install([f"{live_server_url}/team-copy"], auth, tmp_path, monkeypatch)

    assert installed_names(prefix) == ["helper", "tool"]
    for path in ("noarch/repodata.json", "linux-64/repodata.json", "noarch/repodata.json.zst"):
        assert secret.encode() not in get(live_server_url, "team-copy", reader, path)
    status, detail = call("GET", f"{live_server_url}/api/v1/channels/team-copy/", reader)
    assert status == 200 and secret.encode() not in detail
    assert json.loads(detail)["upstream"]["authenticated"] is True
    # Without a token of its own a client gets nothing from the private proxy channel.
    status, _ = call("GET", f"{live_server_url}/team-copy/noarch/repodata.json")
    assert status == 401


def test_py_rattler_installs_from_a_mirror_of_a_private_upstream_and_a_combined_channel(
    live_server_url, private_channel, tokens, packages, users, upstream_networks, tmp_path,
    monkeypatch,
):  # fmt: skip
    tool = packages.make("tool", "1.0", "linux-64", depends=["helper"])
    helper = packages.make("helper", "0.5", "noarch")
    skipped = packages.make("unwanted", "1.0", "noarch")
    rattler_build.upload_package_to_prefix(
        [str(tool), str(helper), str(skipped)], live_server_url, private_channel.name,
        api_key=tokens["owner"],
    )  # fmt: skip
    wait_for_index(private_channel, "linux-64")
    wait_for_index(private_channel, "noarch")
    url = f"{live_server_url}/{private_channel.name}"
    mirror = make_mirror(users["owner"], url, private=True, exclude=["unwanted"],
                         token=tokens["maintainer"])  # fmt: skip
    assert MirrorRun.objects.get(channel=mirror).state == "finished"
    wait_for_index(mirror, "linux-64")
    wait_for_index(mirror, "noarch")
    with transaction.atomic():
        combined = create_channel(users["owner"], "all", private=True, kind="combined")
        attach(combined, combines=[mirror])
    auth = {"127.0.0.1": {"BearerToken": tokens["owner"]}}

    for channel in ("mirror", "all"):
        (tmp_path / channel).mkdir()
        records, prefix = solve_and_install(
            [f"{live_server_url}/{channel}"], auth, tmp_path / channel, monkeypatch
        )
        assert installed_names(prefix) == ["helper", "tool"]
        assert all(r.url.startswith(f"{live_server_url}/") for r in records)
    kept = PackageFile.objects.filter(channel=mirror).values_list("name", flat=True)
    assert sorted(kept) == ["helper", "tool"]
