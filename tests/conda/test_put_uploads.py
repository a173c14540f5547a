"""``PUT /<channel>/<subdir>/<filename>``: the Artifactory-style upload, by the rules of every
other upload; with rattler-build and curl against a live server, then installed by
py-rattler."""

import base64
import json
import subprocess

import orjson
import pytest
import rattler_build
from django.test import Client

from accounts.models import ApiToken, AuditEvent
from packages_app.models import PackageFile

from ..clients import installed_names, solve_and_install
from ..packages import sha256_of, wait_for_index

pytestmark = pytest.mark.django_db(transaction=True)


def put(path, url, secret=None, form="bearer", client=None, **headers):
    """PUT the package at ``path`` to ``url`` with the token in the given form."""
    if secret and form == "bearer":
        headers["Authorization"] = f"Bearer {secret}"
    elif secret and form == "basic":
        headers["Authorization"] = "Basic " + base64.b64encode(f"ci:{secret}".encode()).decode()
    elif secret and form == "x-api-key":
        headers["X-API-Key"] = secret
    elif secret and form == "url":
        url = f"/t/{secret}{url}"
    client = client or Client()
    return client.put(url, path.read_bytes(), "application/octet-stream", headers=headers)


def repodata(channel, subdir, label=None):
    where = f"/{channel.name}/label/{label}" if label else f"/{channel.name}"
    response = Client().get(f"{where}/{subdir}/repodata.json")
    assert response.status_code == 200, response
    return orjson.loads(b"".join(response.streaming_content))


@pytest.mark.parametrize("form", ["bearer", "basic", "x-api-key", "url"])
def test_a_put_stores_the_package_at_its_url_with_every_form_of_token(
    form, public_channel, tokens, packages
):
    path = packages.make("putpkg", "1.0", "linux-64")

    response = put(path, f"/{public_channel.name}/linux-64/{path.name}", tokens["maintainer"], form)

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["channel"], body["subdir"], body["filename"]) == (
        public_channel.name, "linux-64", path.name
    )  # fmt: skip
    assert (body["sha256"], body["labels"], body["already_there"]) == (
        sha256_of(path), ["main"], False
    )  # fmt: skip
    wait_for_index(public_channel, "linux-64")
    assert path.name in repodata(public_channel, "linux-64")["packages.conda"]
    event = AuditEvent.objects.get(action="package.uploaded")
    assert event.actor.username == "maintainer"
    assert event.token == ApiToken.objects.get(user__username="maintainer")


def test_a_put_with_only_a_session_cookie_is_refused(users, public_channel, packages):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(users["owner"])
    path = packages.make("sessionpkg", "1.0")

    response = put(path, f"/{public_channel.name}/noarch/{path.name}", client=browser)

    assert response.status_code == 401
    assert "a browser session is not accepted for PUT" in response.json()["detail"]
    assert response["WWW-Authenticate"] == 'Bearer realm="wharf"'
    assert not PackageFile.objects.exists()


def test_a_read_only_token_and_a_member_may_not_put(users, tokens, public_channel, packages):
    path = packages.make("notyours", "1.0")
    _, read_only = ApiToken.create_for(users["owner"], "ro", read_only=True)
    url = f"/{public_channel.name}/noarch/{path.name}"

    assert put(path, url, read_only).status_code == 403
    assert put(path, url, tokens["member"]).status_code == 403
    assert not PackageFile.objects.exists()


def test_the_same_bytes_again_answer_200_and_change_nothing(public_channel, tokens, packages):
    path = packages.make("twice", "1.0")
    url = f"/{public_channel.name}/noarch/{path.name}"
    assert put(path, url, tokens["owner"]).status_code == 201
    stored = PackageFile.objects.get()

    again = put(path, url, tokens["owner"])

    assert again.status_code == 200, again.content
    assert again.json()["already_there"] is True
    assert PackageFile.objects.get().storage_path == stored.storage_path
    assert AuditEvent.objects.filter(action__startswith="package.").count() == 1


def test_other_bytes_are_a_conflict_unless_an_owner_forces_the_replacement(
    public_channel, tokens, packages
):
    path = packages.make("changing", "1.0", summary="first")
    url = f"/{public_channel.name}/noarch/{path.name}"
    assert put(path, url, tokens["owner"]).status_code == 201
    first = sha256_of(path)
    packages.make("changing", "1.0", summary="rebuilt")  # written over ``path``

    conflict = put(path, url, tokens["owner"])
    by_maintainer = put(path, url + "?force=true", tokens["maintainer"])
    forced = put(path, url + "?force=true", tokens["owner"])

    assert conflict.status_code == 409
    assert first in conflict.json()["detail"] and sha256_of(path) in conflict.json()["detail"]
    assert by_maintainer.status_code == 403
    assert forced.status_code == 201, forced.content
    assert PackageFile.objects.get().sha256 == sha256_of(path)
    assert AuditEvent.objects.filter(action="package.replaced").count() == 1


def test_a_put_to_a_label_url_gives_the_file_that_label(public_channel, tokens, packages):
    path = packages.make("labelled", "1.0")

    response = put(path, f"/{public_channel.name}/label/dev/noarch/{path.name}", tokens["owner"])

    assert response.status_code == 201, response.content
    assert response.json()["labels"] == ["dev"]
    wait_for_index(public_channel, "noarch", label="dev")
    assert path.name in repodata(public_channel, "noarch", "dev")["packages.conda"]


def test_the_subdir_of_the_url_must_be_the_packages_own(public_channel, tokens, packages):
    path = packages.make("wherever", "1.0", "noarch")

    response = put(path, f"/{public_channel.name}/linux-64/{path.name}", tokens["owner"])

    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "subdir 'linux-64'" in detail and "subdir 'noarch'" in detail
    assert not PackageFile.objects.exists()


@pytest.mark.parametrize(
    ("extension", "words"), [(".conda", "match the file name"), (".tar.bz2", "must be named")]
)
def test_the_file_name_of_the_url_must_be_the_packages_own(
    extension, words, public_channel, tokens, packages
):
    path = packages.make("named", "1.0", extension=extension)

    response = put(path, f"/{public_channel.name}/noarch/other-1.0-0{extension}", tokens["owner"])

    assert response.status_code == 422
    assert words in response.json()["detail"]
    assert not PackageFile.objects.exists()


def test_a_put_to_a_path_that_is_no_package_file_is_refused(public_channel, tokens, packages):
    path = packages.make("nowhere", "1.0")
    owner = tokens["owner"]

    index = put(path, f"/{public_channel.name}/noarch/repodata.json", owner)
    channeldata = put(path, f"/{public_channel.name}/channeldata.json", owner)
    post = Client().post(f"/{public_channel.name}/noarch/{path.name}")

    assert index.status_code == 400
    assert "must end in .conda or .tar.bz2" in index.json()["detail"]
    assert channeldata.status_code == 400
    assert "/open-tools/<subdir>/<package file name>" in channeldata.json()["detail"]
    assert post.status_code == 405
    assert post["Allow"] == "GET, HEAD, PUT"
    assert not PackageFile.objects.exists()


def test_a_put_keeps_the_size_limit_and_the_quota(public_channel, tokens, packages, settings):
    path = packages.make("heavy", "1.0")
    url = f"/{public_channel.name}/noarch/{path.name}"
    settings.WHARF_MAX_UPLOAD_SIZE = path.stat().st_size - 1
    too_large = put(path, url, tokens["owner"])
    settings.WHARF_MAX_UPLOAD_SIZE = 10**9
    public_channel.quota_bytes = path.stat().st_size - 1
    public_channel.save()

    over_quota = put(path, url, tokens["owner"])

    assert too_large.status_code == 413
    assert "larger than the limit" in too_large.json()["detail"]
    assert over_quota.status_code == 413
    assert "storage quota" in over_quota.json()["detail"]
    assert not PackageFile.objects.exists()


# Real clients against gunicorn -----------------------------------------------------------


def curl_put(path, url, *headers):
    """``curl -T`` as a person would run it; returns (status, parsed body)."""
    argv = ["curl", "-sS", "-T", str(path), "-w", "\n%{http_code}", url]
    for header in headers:
        argv += ["-H", header]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    body, _, status = out.rpartition("\n")
    return int(status), json.loads(body)


@pytest.mark.live
def test_rattler_build_and_curl_upload_by_put_and_py_rattler_installs(
    live_server_url, private_channel, public_channel, tokens, packages, tmp_path, monkeypatch
):
    # rattler-build sends Bearer and a chunked body; the channel may be a name or a URL.
    tool = packages.make("tool", "1.0", "linux-64", depends=["base >=2"])
    rattler_build.upload_package_to_artifactory(
        [str(tool)], live_server_url, private_channel.name, token=tokens["owner"]
    )
    helper = packages.make("helper", "0.5", "noarch")
    rattler_build.upload_package_to_artifactory(
        [str(helper)], live_server_url, f"{live_server_url}/{private_channel.name}",
        token=tokens["maintainer"],
    )  # fmt: skip
    base = packages.make("base", "2.3", "noarch", extension=".tar.bz2")
    status, body = curl_put(
        base, f"{live_server_url}/{public_channel.name}/noarch/{base.name}",
        f"Authorization: Bearer {tokens['maintainer']}", f"X-Checksum-Sha256: {sha256_of(base)}",
    )  # fmt: skip
    again, _ = curl_put(
        base, f"{live_server_url}/t/{tokens['owner']}/{public_channel.name}/noarch/{base.name}"
    )
    wait_for_index(private_channel, "linux-64")
    wait_for_index(private_channel, "noarch")
    wait_for_index(public_channel, "noarch")
    channels = [
        f"{live_server_url}/{private_channel.name}",
        f"{live_server_url}/{public_channel.name}",
    ]

    records, prefix = solve_and_install(
        channels, {"127.0.0.1": {"BearerToken": tokens["member"]}}, tmp_path, monkeypatch
    )

    assert (status, body["filename"], body["sha256"]) == (201, base.name, sha256_of(base))
    assert again == 200
    assert sorted(r.name.normalized for r in records) == ["base", "helper", "tool"]
    assert installed_names(prefix) == ["base", "helper", "tool"]


@pytest.mark.live
def test_rattler_build_is_refused_a_put_with_other_bytes_and_a_session_free_curl_put(
    live_server_url, public_channel, tokens, packages
):
    path = packages.make("again", "1.0", summary="first")
    rattler_build.upload_package_to_artifactory(
        [str(path)], live_server_url, public_channel.name, token=tokens["owner"]
    )
    packages.make("again", "1.0", summary="rebuilt")  # written over ``path``

    with pytest.raises(Exception, match="error"):
        rattler_build.upload_package_to_artifactory(
            [str(path)], live_server_url, public_channel.name, token=tokens["owner"]
        )
    status, body = curl_put(path, f"{live_server_url}/{public_channel.name}/noarch/{path.name}")

    assert status == 401
    assert "needs a token" in body["detail"]
    assert PackageFile.objects.get(filename=path.name).sha256 != sha256_of(path)
