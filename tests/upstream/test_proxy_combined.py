"""A team's channel combined with a proxy of conda-forge: one URL, one token, the team's
packages first and the upstream's fetched through the proxy."""

import pytest
import rattler_build

from packages_app.models import PackageFile

from ..clients import installed_names, solve_and_install
from ..combined.conftest import combine
from ..packages import wait_for_index

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def test_py_rattler_installs_from_a_team_channel_combined_with_a_proxy(
    live_server_url, private_channel, tokens, packages, static_upstream, proxy_of, client_for,
    tmp_path, monkeypatch,
):  # fmt: skip
    static_upstream.add("base", "2.3", extension=".tar.bz2")
    static_upstream.add("helper", "0.1")  # the team's own helper wins over the upstream's
    static_upstream.index()
    forge = proxy_of(static_upstream.url)
    tool = packages.make("tool", "1.0", "linux-64", depends=["base >=2", "helper"])
    helper = packages.make("helper", "0.5", "noarch")
    rattler_build.upload_package_to_prefix(
        [str(tool), str(helper)], live_server_url, private_channel.name, api_key=tokens["owner"]
    )
    wait_for_index(private_channel, "linux-64")
    wait_for_index(private_channel, "noarch")
    created = combine(client_for("owner"), [private_channel.name, forge.name])
    assert created.status_code == 201, created.content

    auth = {"127.0.0.1": {"BearerToken": tokens["owner"]}}
    records, prefix = solve_and_install(
        [f"{live_server_url}/team-all"], auth, tmp_path, monkeypatch
    )

    assert installed_names(prefix) == ["base", "helper", "tool"]
    versions = {r.name.normalized: str(r.version) for r in records}
    assert versions["helper"] == "0.5"  # strict priority: the team's channel first
    fetched = PackageFile.objects.filter(channel=forge).values_list("filename", flat=True)
    assert list(fetched) == ["base-2.3-0.tar.bz2"]  # fetched through the proxy, once
