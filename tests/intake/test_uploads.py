import io
import json
import tarfile
from pathlib import Path

import orjson
import pytest
from django.conf import settings
from rest_framework.test import APIClient

from accounts.models import AuditEvent
from packages_app.models import Package, PackageFile, SubdirIndex

from ..packages import multipart_body, sha256_of, upload, wait_for_index

pytestmark = pytest.mark.django_db(transaction=True)


def repodata(client, channel, subdir):
    response = client.get(f"/{channel}/{subdir}/repodata.json")
    assert response.status_code == 200, response.content
    return orjson.loads(b"".join(response.streaming_content))


def stored_files():
    return sorted(
        str(p.relative_to(settings.STORAGE_DIR))
        for p in Path(settings.STORAGE_DIR).rglob("*")
        if p.is_file() and "packages" in p.parts
    )


def test_it_accepts_a_multipart_upload_and_indexes_it(client_for, private_channel, packages):
    path = packages.make("alpha", "1.0", "linux-64", depends=["python >=3.10"])
    owner = client_for("owner")

    response = upload(owner, private_channel.name, path)

    assert response.status_code == 201, response.content
    assert response.json()["sha256"] == sha256_of(path)
    wait_for_index(private_channel, "linux-64")
    records = repodata(owner, private_channel.name, "linux-64")["packages.conda"]
    assert records[path.name]["depends"] == ["python >=3.10"]
    assert records[path.name]["sha256"] == sha256_of(path)
    assert PackageFile.objects.get(filename=path.name).state == PackageFile.State.INDEXED


def test_it_accepts_a_raw_body_with_file_headers(client_for, public_channel, packages):
    path = packages.make("rawpkg", "2.0", extension=".tar.bz2")

    response = client_for("maintainer").generic(
        "POST",
        f"/api/v1/upload/{public_channel.name}",
        path.read_bytes(),
        content_type="application/octet-stream",
        HTTP_X_FILE_NAME=path.name,
        HTTP_X_FILE_SHA256=sha256_of(path),
    )

    assert response.status_code == 201, response.content
    wait_for_index(public_channel, "noarch")
    assert path.name in repodata(client_for(), public_channel.name, "noarch")["packages"]


def test_it_accepts_a_quetz_style_upload_with_api_key(tokens, public_channel, packages):
    path = packages.make("qpkg", "0.1")
    response = APIClient().generic(
        "POST",
        f"/api/channels/{public_channel.name}/upload/{path.name}?force=false&sha256={sha256_of(path)}",
        path.read_bytes(),
        content_type="application/octet-stream",
        HTTP_X_API_KEY=tokens["maintainer"],
    )
    assert response.status_code == 201, response.content
    wait_for_index(public_channel, "noarch")
    assert path.name in repodata(APIClient(), public_channel.name, "noarch")["packages.conda"]


@pytest.fixture
def send(client_for, tokens, public_channel):
    """Upload a file to the public channel as ``who`` by the prefix route (multipart, as
    rattler-build sends it) or the quetz route (raw body, X-API-Key)."""

    def send(route, who, path, *, force=False):
        if route == "prefix":
            return upload(client_for(who), public_channel.name, path, force=force)
        return APIClient().generic(
            "POST",
            f"/api/channels/{public_channel.name}/upload/{path.name}"
            f"?force={str(force).lower()}&sha256={sha256_of(path)}",
            path.read_bytes(),
            content_type="application/octet-stream",
            HTTP_X_API_KEY=tokens[who],
        )

    return send


def state_of(channel):
    """What a re-upload could change: the file rows, the catalog, the audit log, the
    indexes' revisions and the stored objects."""
    return {
        "files": list(PackageFile.objects.order_by("pk").values()),
        "packages": list(Package.objects.order_by("pk").values()),
        "events": list(AuditEvent.objects.order_by("pk").values_list("pk", "action")),
        "revisions": list(
            SubdirIndex.objects.filter(channel=channel)
            .order_by("pk")
            .values_list("label", "subdir", "requested_revision", "built_revision")
        ),
        "stored": stored_files(),
    }


ROUTES = ["prefix", "quetz"]


@pytest.mark.parametrize("route", ROUTES)
def test_the_same_bytes_again_succeed_and_change_nothing(
    route, send, client_for, public_channel, packages
):
    path = packages.make("dup", "1.0")
    assert send(route, "maintainer", path).status_code == 201
    wait_for_index(public_channel, "noarch")
    before = state_of(public_channel)

    again = send(route, "maintainer", path)

    assert again.status_code == 200, again.content
    body = again.json()
    assert body["already_there"] is True
    assert body["sha256"] == sha256_of(path)
    assert body["detail"] == (
        f"open-tools/noarch/{path.name} was already in the channel with the same content "
        f"(sha256 {sha256_of(path)}); nothing changed."
    )
    wait_for_index(public_channel, "noarch")
    assert state_of(public_channel) == before
    assert AuditEvent.objects.filter(action="package.uploaded").count() == 1


@pytest.mark.parametrize("route", ROUTES)
def test_other_bytes_under_a_taken_name_are_a_conflict_naming_both_digests(
    route, send, client_for, public_channel, packages
):
    first = packages.make("dup", "1.0", summary="first build")
    assert send(route, "owner", first).status_code == 201
    wait_for_index(public_channel, "noarch")
    stored_sha = sha256_of(first)
    other = packages.make("dup", "1.0", summary="another build")  # written over ``first``
    assert other.name == first.name and sha256_of(other) != stored_sha
    before = state_of(public_channel)

    refused = send(route, "owner", other)

    assert refused.status_code == 409, refused.content
    assert refused.json()["detail"] == (
        f"open-tools/noarch/{first.name} is already in the channel with other content "
        f"(sha256 {stored_sha}, this file {sha256_of(other)}); the stored file was left as "
        "it is. Upload it with ?force=true (channel owners) to replace the stored file."
    )
    wait_for_index(public_channel, "noarch")
    assert state_of(public_channel) == before


@pytest.mark.parametrize("route", ROUTES)
def test_a_forced_upload_replaces_the_file_as_an_audited_action_of_its_own(
    route, send, client_for, public_channel, packages
):
    first = packages.make("dup", "1.0", summary="first build")
    assert send(route, "owner", first).status_code == 201
    main = wait_for_index(public_channel, "noarch")
    first_sha = sha256_of(first)
    replacement = packages.make("dup", "1.0", summary="the replacement")  # over ``first``

    response = send(route, "owner", replacement, force=True)

    assert response.status_code == 201, response.content
    assert response.json()["already_there"] is False
    stored = PackageFile.objects.get(filename=first.name)
    assert stored.sha256 == sha256_of(replacement)
    event = AuditEvent.objects.get(action="package.replaced")
    assert (event.actor_name, event.details) == (
        "owner",
        {
            "subdir": "noarch",
            "filename": first.name,
            "sha256": sha256_of(replacement),
            "replaced_sha256": first_sha,
            "labels": ["main"],
        },
    )
    assert AuditEvent.objects.filter(action="package.uploaded").count() == 1  # the first
    index = wait_for_index(public_channel, "noarch")
    assert index.requested_revision == main.requested_revision + 1
    record = repodata(client_for(), public_channel.name, "noarch")["packages.conda"][first.name]
    assert record["sha256"] == sha256_of(replacement)


def test_it_lets_only_owners_force_a_replacement(client_for, public_channel, packages, tmp_path):
    first = packages.make("swap", "1.0", summary="first build")
    assert upload(client_for("owner"), public_channel.name, first).status_code == 201
    wait_for_index(public_channel, "noarch")
    first_sha = sha256_of(first)
    first_path = PackageFile.objects.get(filename=first.name).storage_path
    replacement = packages.make(
        "swap", "1.0", summary="second build", build_number=0, description="changed bytes"
    )
    assert sha256_of(replacement) != first_sha

    denied = upload(client_for("maintainer"), public_channel.name, replacement, force=True)
    assert denied.status_code == 403
    replaced = upload(client_for("owner"), public_channel.name, replacement, force=True)

    assert replaced.status_code == 201, replaced.content
    wait_for_index(public_channel, "noarch")
    record = repodata(client_for(), public_channel.name, "noarch")["packages.conda"][first.name]
    assert record["sha256"] == sha256_of(replacement)
    assert first_path not in stored_files()
    assert PackageFile.objects.get(filename=first.name).storage_path in stored_files()


def _tar_bz2(files):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:bz2") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _bad_upload(case, packages, tmp_path):
    """Return (filename, bytes, declared sha256 or None, expected status, words in message)."""
    good = packages.make("victim", "1.0")
    data = good.read_bytes()
    if case == "corrupt archive":
        broken = bytearray(data)
        broken[len(broken) // 2 : len(broken) // 2 + 40] = b"\0" * 40
        return good.name, bytes(broken), None, 422, "corrupt"
    if case == "truncated archive":
        return good.name, data[: len(data) // 2], None, 422, "not a readable zip"
    if case == "wrong sha256":
        return good.name, data, "0" * 64, 400, "sha256 mismatch"
    if case == "name mismatch":
        legacy = packages.make("victim", "1.0", extension=".tar.bz2")
        return "other-1.0-0.tar.bz2", legacy.read_bytes(), None, 422, "must be named"
    if case == "missing index.json":
        body = _tar_bz2({"info/about.json": json.dumps({"summary": "x"}).encode()})
        return "victim-1.0-0.tar.bz2", body, None, 422, "no info/index.json"
    if case == "invalid index.json":
        body = _tar_bz2({"info/index.json": b"{not json"})
        return "victim-1.0-0.tar.bz2", body, None, 422, "not valid UTF-8 JSON"
    if case == "unsupported extension":
        return "victim-1.0-0.zip", data, None, 400, "must end in .conda or .tar.bz2"
    if case == "empty file":
        return good.name, b"", None, 400, "empty"
    raise AssertionError(case)


BAD_CASES = [
    "corrupt archive",
    "truncated archive",
    "wrong sha256",
    "name mismatch",
    "missing index.json",
    "invalid index.json",
    "unsupported extension",
    "empty file",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_it_refuses_bad_uploads_and_changes_nothing(
    case, client_for, public_channel, packages, tmp_path
):
    owner = client_for("owner")
    kept = packages.make("kept", "1.0")
    assert upload(owner, public_channel.name, kept).status_code == 201
    wait_for_index(public_channel, "noarch")
    before = (repodata(owner, public_channel.name, "noarch"), stored_files())
    filename, data, declared, status, words = _bad_upload(case, packages, tmp_path)
    bad = tmp_path / "upload.bin"
    bad.write_bytes(data)

    body, content_type = multipart_body(bad, filename=filename, sha256=declared)
    response = owner.generic(
        "POST", f"/api/v1/upload/{public_channel.name}", body, content_type=content_type
    )

    assert response.status_code == status, response.content
    assert words in response.json()["detail"]
    wait_for_index(public_channel, "noarch")
    assert (repodata(owner, public_channel.name, "noarch"), stored_files()) == before
    assert list(PackageFile.objects.values_list("filename", flat=True)) == [kept.name]


def test_it_refuses_a_package_over_the_size_limit(client_for, public_channel, packages, settings):
    path = packages.make("big", "1.0")
    settings.WHARF_MAX_UPLOAD_SIZE = path.stat().st_size - 1
    before = stored_files()

    response = upload(client_for("owner"), public_channel.name, path)

    assert response.status_code == 413
    assert "larger than the limit" in response.json()["detail"]
    assert not PackageFile.objects.exists()
    assert stored_files() == before


def test_it_refuses_a_multipart_body_without_a_file_part(client_for, public_channel, packages):
    path = packages.make("nofile", "1.0")
    body, content_type = multipart_body(path, field="attestation")

    response = client_for("owner").generic(
        "POST", f"/api/v1/upload/{public_channel.name}", body, content_type=content_type
    )

    assert response.status_code == 400
    assert "no part named 'file'" in response.json()["detail"]


def test_it_refuses_a_package_for_an_unknown_channel(client_for, users, packages):
    path = packages.make("lost", "1.0")
    response = upload(client_for("owner"), "no-such-channel", path)
    assert response.status_code == 404
