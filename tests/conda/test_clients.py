"""End to end with the real clients: rattler-build uploads, py-rattler solves and installs.

A package in a private channel depends on one in a public channel; both channels are
given to the solver, as a team would combine its channel with conda-forge.
"""

import pytest
import rattler_build

from accounts.models import AuditEvent
from packages_app.models import PackageFile

from ..clients import installed_names, solve_and_install
from ..packages import sha256_of, wait_for_index

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


@pytest.fixture
def two_channels(live_server_url, private_channel, public_channel, tokens, packages):
    """`tool` (private, linux-64 .conda) depends on `base` (public, noarch .tar.bz2)."""
    base = packages.make("base", "2.3", "noarch", extension=".tar.bz2")
    tool = packages.make("tool", "1.0", "linux-64", depends=["base >=2"])
    helper = packages.make("helper", "0.5", "noarch")
    rattler_build.upload_package_to_quetz(
        [str(base)], live_server_url, public_channel.name, api_key=tokens["maintainer"]
    )
    rattler_build.upload_package_to_prefix(
        [str(tool), str(helper)], live_server_url, private_channel.name, api_key=tokens["owner"]
    )
    # The same file again is a success that changes nothing; --skip-existing keeps working.
    rattler_build.upload_package_to_prefix(
        [str(tool)],
        live_server_url,
        private_channel.name,
        api_key=tokens["owner"],
        skip_existing=True,
    )
    wait_for_index(public_channel, "noarch")
    wait_for_index(private_channel, "linux-64")
    wait_for_index(private_channel, "noarch")
    return private_channel, public_channel


def test_it_installs_with_a_bearer_token(
    two_channels, live_server_url, tokens, tmp_path, monkeypatch
):
    private, public = two_channels
    channels = [f"{live_server_url}/{private.name}", f"{live_server_url}/{public.name}"]

    records, prefix = solve_and_install(
        channels, {"127.0.0.1": {"BearerToken": tokens["member"]}}, tmp_path, monkeypatch
    )

    assert sorted(r.name.normalized for r in records) == ["base", "helper", "tool"]
    assert installed_names(prefix) == ["base", "helper", "tool"]
    assert (prefix / "README.txt").exists()


def test_it_installs_with_basic_credentials(
    two_channels, live_server_url, tokens, tmp_path, monkeypatch
):
    private, public = two_channels
    channels = [f"{live_server_url}/{private.name}", f"{live_server_url}/{public.name}"]
    auth = {"127.0.0.1": {"BasicHTTP": {"username": "member", "password": tokens["member"]}}}

    _, prefix = solve_and_install(channels, auth, tmp_path, monkeypatch)

    assert installed_names(prefix) == ["base", "helper", "tool"]


def test_it_installs_from_a_token_url(two_channels, live_server_url, tokens, tmp_path, monkeypatch):
    private, public = two_channels
    channels = [
        f"{live_server_url}/t/{tokens['maintainer']}/{private.name}",
        f"{live_server_url}/{public.name}",
    ]

    _, prefix = solve_and_install(channels, {}, tmp_path, monkeypatch)

    assert installed_names(prefix) == ["base", "helper", "tool"]


def test_it_refuses_the_private_channel_without_a_token(
    two_channels, live_server_url, tmp_path, monkeypatch
):
    private, public = two_channels
    channels = [f"{live_server_url}/{private.name}", f"{live_server_url}/{public.name}"]

    with pytest.raises(Exception, match="401|Unauthorized|unauthorized"):
        solve_and_install(channels, {}, tmp_path, monkeypatch)


def test_it_refuses_a_revoked_token(
    two_channels, live_server_url, tokens, users, tmp_path, monkeypatch
):
    from accounts.models import ApiToken

    private, public = two_channels
    for token in ApiToken.objects.filter(user=users["member"]):
        token.revoke()
    channels = [f"{live_server_url}/{private.name}", f"{live_server_url}/{public.name}"]

    with pytest.raises(Exception, match="401|Unauthorized|unauthorized"):
        solve_and_install(
            channels, {"127.0.0.1": {"BearerToken": tokens["member"]}}, tmp_path, monkeypatch
        )


def test_rattler_build_uploads_the_same_file_again_and_nothing_changes(
    live_server_url, public_channel, tokens, packages
):
    path = packages.make("again", "1.0", "noarch")
    token = tokens["maintainer"]
    rattler_build.upload_package_to_prefix(
        [str(path)], live_server_url, public_channel.name, api_key=token
    )
    stored = PackageFile.objects.get(filename=path.name)

    # A retried CI job, without --skip-existing, by either route: each succeeds.
    rattler_build.upload_package_to_prefix(
        [str(path)], live_server_url, public_channel.name, api_key=token
    )
    rattler_build.upload_package_to_quetz(
        [str(path)], live_server_url, public_channel.name, api_key=token
    )

    again = PackageFile.objects.get(filename=path.name)
    assert (again.pk, again.sha256, again.uploaded_at, again.storage_path) == (
        stored.pk,
        sha256_of(path),
        stored.uploaded_at,
        stored.storage_path,
    )
    changes = AuditEvent.objects.filter(action__startswith="package.")
    assert list(changes.values_list("action", flat=True)) == ["package.uploaded"]


def test_rattler_build_is_refused_other_bytes_under_a_taken_name(
    live_server_url, public_channel, tokens, packages
):
    path = packages.make("again", "1.0", "noarch", summary="first")
    rattler_build.upload_package_to_prefix(
        [str(path)], live_server_url, public_channel.name, api_key=tokens["owner"]
    )
    stored = sha256_of(path)
    packages.make("again", "1.0", "noarch", summary="rebuilt")  # written over ``path``

    with pytest.raises(Exception, match="409|Conflict|already exists"):
        rattler_build.upload_package_to_prefix(
            [str(path)], live_server_url, public_channel.name, api_key=tokens["owner"]
        )
    # --skip-existing reads the 409 as "already exists" and goes on.
    rattler_build.upload_package_to_prefix(
        [str(path)],
        live_server_url,
        public_channel.name,
        api_key=tokens["owner"],
        skip_existing=True,
    )
    assert PackageFile.objects.get(filename=path.name).sha256 == stored
