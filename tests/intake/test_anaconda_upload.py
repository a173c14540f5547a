"""Uploads in the anaconda.org protocol (/api/anaconda/), with the real clients —
anaconda-client 1.16's ``anaconda upload`` and py-rattler-build's
``upload_package_to_anaconda`` — against a live gunicorn, and with plain HTTP for what
clients would not send: damaged bytes, uncommitted uploads, callers without rights."""

import base64
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rattler_build
import requests

from accounts.models import ApiToken, AuditEvent
from packages_app.models import PackageFile, StagedFile

from ..clients import installed_names, solve_and_install
from ..packages import sha256_of, wait_for_index
from ..served import orphan_package_files, served_filenames

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

ANACONDA = str(Path(sys.executable).with_name("anaconda"))


@pytest.fixture
def anaconda(live_server_url, tmp_path):
    """``anaconda(token, *args)`` runs the anaconda CLI with site ``wharf`` set to this
    server, its configuration in a home of its own; returns (exit status, output)."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "PATH": os.environ["PATH"],
        "OTEL_SDK_DISABLED": "true",  # anaconda-client's telemetry
    }

    def run(*args):
        done = subprocess.run([ANACONDA, *args], env=env, capture_output=True, text=True,
                              timeout=120)  # fmt: skip
        return done.returncode, done.stdout + done.stderr

    status, output = run("config", "--set", "sites.wharf.url", f"{live_server_url}/api/anaconda/")
    assert status == 0, output

    return lambda token, *args: run("-s", "wharf", "-t", token, *map(str, args))


def api(base_url, method, path, token=None, **kwargs):
    headers = {"Authorization": f"token {token}"} if token else {}
    return requests.request(method, f"{base_url}/api/anaconda/{path}", headers=headers,
                            timeout=60, **kwargs)  # fmt: skip


def file_route(channel, path):
    """``<owner>/<name>/<version>/<subdir>/<filename>`` of a package file made by
    PackageFactory (``name-version-build.conda`` in a folder named after its subdir)."""
    name, version, _ = path.name.removesuffix(".conda").rsplit("-", 2)
    return f"{channel}/{name}/{version}/{path.parent.name}/{path.name}"


def stage(base_url, token, channel, path, sha256=None, labels=()):
    return api(base_url, "POST", f"stage/{file_route(channel, path)}", token, json={
        "distribution_type": "conda", "attrs": {}, "channels": list(labels),
        "sha256": sha256 or sha256_of(path),
    })  # fmt: skip


def send_bytes(staged, path, content_md5=None, accept="application/json"):
    data = path.read_bytes()
    fields = dict(staged["form_data"])
    fields["Content-Length"] = str(len(data))
    fields["Content-MD5"] = content_md5 or base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324
    return requests.post(staged["post_url"], data=fields, files={"file": (path.name, data)},
                         headers={"Accept": accept}, timeout=60)  # fmt: skip


def commit(base_url, token, channel, path, dist_id):
    return api(base_url, "POST", f"commit/{file_route(channel, path)}", token,
               json={"dist_id": dist_id})  # fmt: skip


def assert_nothing_kept(base_url, token, channel, path, staged):
    """No stored object, staged record or file row is left of the upload, and its commit
    is refused (404); returns the refusal's message."""
    assert orphan_package_files(channel) == set()
    assert not StagedFile.objects.exists()
    refused = commit(base_url, token, channel.name, path, staged["dist_id"])
    assert refused.status_code == 404
    assert "No upload waits for commit" in refused.json()["error"]
    assert not PackageFile.objects.filter(filename=path.name).exists()
    return refused.json()["error"]


def test_anaconda_client_uploads_to_a_label_and_replaces_with_force(
    anaconda, live_server_url, public_channel, users, tokens, packages, tmp_path, monkeypatch
):
    path = packages.make("tool", "1.0", "linux-64")

    status, output = anaconda(tokens["maintainer"], "upload", "-u", public_channel.name,
                              "--label", "dev", path)  # fmt: skip

    assert status == 0, output
    assert 'Using "open-tools" as upload username' in output
    assert "Upload complete" in output
    stored = PackageFile.objects.get(channel=public_channel, filename=path.name)
    assert (stored.sha256, stored.label_names, stored.uploader) == (
        sha256_of(path),
        ["dev"],
        users["maintainer"],
    )
    wait_for_index(public_channel, "linux-64", label="dev")
    dev = f"{public_channel.name}/label/dev"
    assert served_filenames(live_server_url, dev, None, "linux-64") == {path.name}
    main = served_filenames(live_server_url, public_channel.name, None, "linux-64")
    assert main == set()  # not in main: its linux-64 index is empty

    first = sha256_of(path)
    packages.make("tool", "1.0", "linux-64", summary="rebuilt")  # other bytes, same name
    status, output = anaconda(tokens["maintainer"], "upload", "-u", public_channel.name,
                              "--label", "dev", path)  # fmt: skip
    assert status != 0
    assert "already exists" in output
    assert PackageFile.objects.get(filename=path.name).sha256 == first

    status, output = anaconda(tokens["maintainer"], "upload", "-u", public_channel.name,
                              "--label", "dev", "--force", path)  # fmt: skip
    assert status == 0, output
    assert "already exists. Removing." in output and "Upload complete" in output
    assert PackageFile.objects.get(filename=path.name).sha256 == sha256_of(path) != first
    actions = AuditEvent.objects.filter(action__startswith="package.").order_by("pk")
    assert list(actions.values_list("action", flat=True)) == [
        "package.uploaded", "package.deleted", "package.uploaded"
    ]  # fmt: skip
    assert orphan_package_files(public_channel) == set()
    wait_for_index(public_channel, "linux-64", label="dev")
    records, prefix = solve_and_install(
        [f"{live_server_url}/{dev}"], {}, tmp_path, monkeypatch, specs=["tool"]
    )
    assert [r.sha256.hex() for r in records] == [sha256_of(path)]
    assert installed_names(prefix) == ["tool"]


def test_anaconda_client_without_u_uploads_to_the_channel_named_as_the_user(
    anaconda, live_server_url, users, tokens, packages
):
    path = packages.make("mine", "0.1", "noarch")

    status, output = anaconda(tokens["owner"], "upload", path)

    # GET /user answers the token's user; no channel has that name.
    assert status != 0
    assert 'Using "owner" as upload username' in output
    assert "Channel 'owner' not found" in output
    assert not PackageFile.objects.filter(filename=path.name).exists()


def test_rattler_build_uploads_and_replaces_with_force(
    live_server_url, private_channel, tokens, packages, tmp_path, monkeypatch
):
    path = packages.make("helper", "0.5", "noarch")
    site = f"{live_server_url}/api/anaconda"

    rattler_build.upload_package_to_anaconda(
        [str(path)], private_channel.name, api_key=tokens["owner"], url=site
    )

    assert PackageFile.objects.get(filename=path.name).label_names == ["main"]
    first = sha256_of(path)
    packages.make("helper", "0.5", "noarch", summary="rebuilt")
    with pytest.raises(Exception, match="already exists"):
        rattler_build.upload_package_to_anaconda(
            [str(path)], private_channel.name, api_key=tokens["owner"], url=site
        )
    assert PackageFile.objects.get(filename=path.name).sha256 == first
    rattler_build.upload_package_to_anaconda(
        [str(path)], private_channel.name, api_key=tokens["owner"], url=site + "/", force=True
    )
    assert PackageFile.objects.get(filename=path.name).sha256 == sha256_of(path)
    wait_for_index(private_channel, "noarch")
    records, prefix = solve_and_install(
        [f"{live_server_url}/{private_channel.name}"],
        {"127.0.0.1": {"BearerToken": tokens["member"]}},
        tmp_path, monkeypatch, specs=["helper"],
    )  # fmt: skip
    assert [r.sha256.hex() for r in records] == [sha256_of(path)]
    assert installed_names(prefix) == ["helper"]


def test_the_same_bytes_again_change_nothing(live_server_url, public_channel, tokens, packages):
    path = packages.make("again", "1.0", "noarch")
    site = f"{live_server_url}/api/anaconda"
    rattler_build.upload_package_to_anaconda(
        [str(path)], public_channel.name, api_key=tokens["owner"], url=site
    )
    stored = PackageFile.objects.get(filename=path.name)

    rattler_build.upload_package_to_anaconda(
        [str(path)], public_channel.name, api_key=tokens["owner"], url=site
    )

    again = PackageFile.objects.get(filename=path.name)
    assert (again.pk, again.storage_path, again.uploaded_at) == (
        stored.pk, stored.storage_path, stored.uploaded_at
    )  # fmt: skip
    assert orphan_package_files(public_channel) == set()
    assert not StagedFile.objects.exists()


def test_a_file_is_visible_only_once_committed(live_server_url, public_channel, tokens, packages):
    path = packages.make("late", "1.0", "noarch")
    staged = stage(live_server_url, tokens["owner"], public_channel.name, path).json()
    assert send_bytes(staged, path).status_code == 201

    assert not PackageFile.objects.filter(filename=path.name).exists()
    assert StagedFile.objects.filter(channel=public_channel).count() == 1
    answer = commit(live_server_url, tokens["owner"], public_channel.name, path, staged["dist_id"])

    assert answer.status_code == 200, answer.text
    assert answer.json()["sha256"] == sha256_of(path)
    assert not StagedFile.objects.exists()
    wait_for_index(public_channel, "noarch")
    assert path.name in served_filenames(live_server_url, public_channel.name, None, "noarch")
    # A commit sent again (its answer was lost) finds the upload done.
    again = commit(live_server_url, tokens["owner"], public_channel.name, path, staged["dist_id"])
    assert (again.status_code, again.json()["already_there"]) == (200, True)


def test_bytes_that_do_not_match_the_staged_sha256_are_refused_and_not_kept(
    live_server_url, public_channel, tokens, packages
):
    path = packages.make("damaged", "1.0", "noarch")
    staged = stage(live_server_url, tokens["owner"], public_channel.name, path,
                   sha256="ab" * 32).json()  # fmt: skip

    answer = send_bytes(staged, path)

    assert answer.status_code == 400
    assert "sha256 mismatch" in answer.json()["error"]
    assert "ab" * 32 in answer.json()["error"] and sha256_of(path) in answer.json()["error"]
    assert_nothing_kept(live_server_url, tokens["owner"], public_channel, path, staged)


def test_bytes_that_do_not_match_their_content_md5_are_refused_as_s3_would(
    live_server_url, public_channel, tokens, packages
):
    path = packages.make("damaged", "2.0", "noarch")
    staged = stage(live_server_url, tokens["owner"], public_channel.name, path).json()

    answer = send_bytes(staged, path, content_md5=base64.b64encode(b"x" * 16).decode(),
                        accept="*/*")  # fmt: skip

    # anaconda-client reads an S3 error document from this URL.
    assert answer.status_code == 400
    assert answer.headers["Content-Type"] == "application/xml"
    assert "<Code>BadDigest</Code>" in answer.text and "Content-MD5 mismatch" in answer.text
    assert not StagedFile.objects.exists()
    assert orphan_package_files(public_channel) == set()


def test_bytes_without_a_valid_dist_id_are_refused_before_they_are_read(
    live_server_url, public_channel, tokens, packages
):
    path = packages.make("forged", "1.0", "noarch")
    staged = stage(live_server_url, tokens["owner"], public_channel.name, path).json()
    forged = {**staged, "form_data": {"dist_id": staged["dist_id"][:-2] + "xx"}}

    answer = send_bytes(forged, path)

    assert answer.status_code == 400
    assert "not an upload this server staged" in answer.json()["error"]
    assert orphan_package_files(public_channel) == set()


def test_an_uncommitted_upload_is_deleted_after_its_deadline(
    processes, public_channel, tokens, packages
):
    base_url = processes.gunicorn(env={"WHARF_STAGED_UPLOAD_SECONDS": "2"})
    path = packages.make("forgotten", "1.0", "noarch")
    staged = stage(base_url, tokens["owner"], public_channel.name, path).json()
    assert send_bytes(staged, path).status_code == 201
    assert len(orphan_package_files(public_channel)) == 1  # stored, not committed

    time.sleep(2.5)
    processes.run(["manage.py", "clean_uploads"])

    late = assert_nothing_kept(base_url, tokens["owner"], public_channel, path, staged)
    assert "waited more than 2 seconds and was deleted" in late


def test_other_bytes_under_a_taken_name_are_a_conflict_at_stage(
    live_server_url, public_channel, tokens, packages
):
    path = packages.make("taken", "1.0", "noarch")
    rattler_build.upload_package_to_anaconda(
        [str(path)], public_channel.name, api_key=tokens["owner"],
        url=f"{live_server_url}/api/anaconda",
    )  # fmt: skip

    answer = stage(live_server_url, tokens["owner"], public_channel.name, path, sha256="cd" * 32)

    assert answer.status_code == 409
    assert sha256_of(path) in answer.json()["error"] and "cd" * 32 in answer.json()["error"]
    assert "--force" in answer.json()["error"]


def test_a_private_channel_answers_an_outsider_as_a_missing_one(
    live_server_url, private_channel, tokens, packages
):
    path = packages.make("secret", "1.0", "noarch")
    outsider = tokens["outsider"]

    for route in ("user/{}", "package/{}/secret", "release/{}/secret/1.0",
                  f"dist/{{}}/secret/1.0/noarch/{path.name}"):  # fmt: skip
        private = api(live_server_url, "GET", route.format(private_channel.name), outsider)
        missing = api(live_server_url, "GET", route.format("no-such-channel"), outsider)
        assert private.status_code == missing.status_code == 404
        assert private.text == missing.text.replace("no-such-channel", private_channel.name)
        assert api(live_server_url, "GET", route.format(private_channel.name)).status_code == 401
    refused = stage(live_server_url, outsider, private_channel.name, path)
    assert refused.status_code == 404
    assert refused.json()["error"] == f"Channel '{private_channel.name}' not found."


def test_callers_without_the_right_to_upload_are_refused(
    anaconda, live_server_url, public_channel, users, tokens, packages
):
    path = packages.make("nope", "1.0", "noarch")

    status, output = anaconda(tokens["member"], "upload", "-u", public_channel.name, path)

    assert status != 0
    assert "You may not upload in channel 'open-tools' as member." in output
    _, read_only = ApiToken.create_for(users["maintainer"], "ci", read_only=True)
    for token in (read_only, tokens["member"], tokens["outsider"]):
        answer = stage(live_server_url, token, public_channel.name, path)
        assert answer.status_code == 403, answer.text
    assert stage(live_server_url, "wharf-" + "x" * 40, public_channel.name, path).status_code == 401
    assert stage(live_server_url, None, public_channel.name, path).status_code == 401
    assert not PackageFile.objects.filter(filename=path.name).exists()
    assert orphan_package_files(public_channel) == set()


def test_a_commit_by_another_user_is_refused(live_server_url, public_channel, tokens, packages):
    path = packages.make("theirs", "1.0", "noarch")
    staged = stage(live_server_url, tokens["maintainer"], public_channel.name, path).json()
    assert send_bytes(staged, path).status_code == 201

    answer = commit(live_server_url, tokens["owner"], public_channel.name, path, staged["dist_id"])

    assert answer.status_code == 403
    assert "staged by someone else" in answer.json()["error"]
    assert not PackageFile.objects.filter(filename=path.name).exists()


def test_bytes_not_sent_as_a_form_are_refused(live_server_url, public_channel, tokens, packages):
    path = packages.make("raw", "1.0", "noarch")
    staged = stage(live_server_url, tokens["owner"], public_channel.name, path).json()

    answer = requests.post(staged["post_url"], data=path.read_bytes(), timeout=60,
                           headers={"Accept": "application/json"})  # fmt: skip

    assert answer.status_code == 415
    assert "multipart/form-data" in answer.json()["error"]
    assert orphan_package_files(public_channel) == set()
