"""End to end: py-rattler solves and installs from one combined channel with one token,
against gunicorn (and, in services mode, the Celery worker that indexes the members)."""

import pytest
import rattler_build

from ..clients import installed_names, solve_and_install
from ..packages import wait_for_index
from .conftest import COMBINED

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


@pytest.fixture
def uploaded(live_server_url, team_all, team, forge, tokens, packages):
    """team: `tool` (linux-64) needing `base`, and its own `helper` 0.5; forge: `base`
    (noarch .tar.bz2) and a newer `helper` 9.0 that team's shadows."""
    tool = packages.make("tool", "1.0", "linux-64", depends=["base >=2", "helper"])
    ours = packages.make("helper", "0.5", "noarch")
    base = packages.make("base", "2.3", "noarch", extension=".tar.bz2")
    theirs = packages.make("helper", "9.0", "noarch")
    rattler_build.upload_package_to_prefix(
        [str(tool), str(ours)], live_server_url, team.name, api_key=tokens["owner"]
    )
    rattler_build.upload_package_to_prefix(
        [str(base), str(theirs)], live_server_url, forge.name, api_key=tokens["owner"]
    )
    for channel, subdir in ((team, "linux-64"), (team, "noarch"), (forge, "noarch")):
        wait_for_index(channel, subdir)


def test_it_installs_from_the_combined_channel_with_one_token(
    uploaded, live_server_url, tokens, tmp_path, monkeypatch
):
    auth = {"127.0.0.1": {"BearerToken": tokens["member"]}}

    records, prefix = solve_and_install(
        [f"{live_server_url}/{COMBINED}"], auth, tmp_path, monkeypatch, specs=("tool",)
    )

    chosen = {r.name.normalized: str(r.version) for r in records}
    assert chosen == {"tool": "1.0", "base": "2.3", "helper": "0.5"}
    assert installed_names(prefix) == ["base", "helper", "tool"]
    assert all(f"/{COMBINED}/" in r.url for r in records)


def test_it_installs_with_the_token_in_the_url(
    uploaded, live_server_url, tokens, tmp_path, monkeypatch
):
    channel = f"{live_server_url}/t/{tokens['member']}/{COMBINED}"

    _, prefix = solve_and_install([channel], {}, tmp_path, monkeypatch, specs=("tool",))

    assert installed_names(prefix) == ["base", "helper", "tool"]


def test_it_refuses_the_private_combined_channel_without_a_token(
    uploaded, live_server_url, tmp_path, monkeypatch
):
    with pytest.raises(Exception, match="401|Unauthorized|unauthorized"):
        solve_and_install(
            [f"{live_server_url}/{COMBINED}"], {}, tmp_path, monkeypatch, specs=("tool",)
        )
