"""Every digest a client declares for a package is checked, wherever it declares it: a
request header (also with a multipart body), the part header, quetz's ``?sha256=``, the
headers of a PUT. A mismatch is a 400 that names the digest and stores nothing."""

import hashlib

import pytest
from django.test import Client

from accounts.models import AuditEvent
from packages_app.models import PackageFile

from ..packages import multipart_body, sha256_of

pytestmark = pytest.mark.django_db(transaction=True)

WRONG = "0" * 64


def digests_of(path):
    data = path.read_bytes()
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": hashlib.md5(data).hexdigest(),  # noqa: S324
        "sha1": hashlib.sha1(data).hexdigest(),  # noqa: S324
    }


def prefix_multipart(channel, path, secret, part_sha256=None, **headers):
    body, content_type = multipart_body(path, sha256=part_sha256)
    return Client().post(
        f"/api/v1/upload/{channel.name}", body, content_type,
        headers={"Authorization": f"Bearer {secret}", **headers},
    )  # fmt: skip


def prefix_raw(channel, path, secret, **headers):
    return Client().post(
        f"/api/v1/upload/{channel.name}", path.read_bytes(), "application/octet-stream",
        headers={"Authorization": f"Bearer {secret}", "X-File-Name": path.name, **headers},
    )  # fmt: skip


def quetz(channel, path, secret, sha256, **headers):
    return Client().post(
        f"/api/channels/{channel.name}/upload/{path.name}?sha256={sha256}",
        path.read_bytes(), "application/octet-stream", headers={"X-API-Key": secret, **headers},
    )  # fmt: skip


def put(channel, path, secret, **headers):
    return Client().put(
        f"/{channel.name}/noarch/{path.name}", path.read_bytes(), "application/octet-stream",
        headers={"Authorization": f"Bearer {secret}", **headers},
    )  # fmt: skip


def assert_refused(response, *named):
    assert response.status_code == 400, response.content
    detail = response.json()["detail"]
    for words in named:
        assert words in detail, detail
    assert not PackageFile.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="package.").exists()


def test_a_request_header_is_checked_beside_the_part_header_of_a_multipart_body(
    public_channel, tokens, packages
):
    path = packages.make("multi", "1.0")

    response = prefix_multipart(public_channel, path, tokens["owner"], X_File_SHA256=WRONG)

    assert_refused(
        response, f"sha256 mismatch: the request header X-File-SHA256 declares {WRONG}",
        f"hash to {sha256_of(path)}",
    )  # fmt: skip


def test_a_wrong_part_header_is_named_as_the_part_header(public_channel, tokens, packages):
    path = packages.make("multi", "1.0")

    response = prefix_multipart(
        public_channel, path, tokens["owner"], part_sha256=WRONG, X_File_SHA256=sha256_of(path)
    )

    assert_refused(response, "the header x-file-sha256 of the part 'file' declares")
    assert "X-File-SHA256" not in response.json()["detail"]


def test_every_wrong_digest_is_named_at_once(public_channel, tokens, packages):
    path = packages.make("multi", "1.0")

    response = prefix_multipart(
        public_channel, path, tokens["owner"], part_sha256=WRONG, X_File_SHA256=WRONG
    )

    assert_refused(response, "the request header X-File-SHA256", "of the part 'file'")


def test_a_wrong_header_of_a_raw_prefix_upload_is_named(public_channel, tokens, packages):
    path = packages.make("raw", "1.0")

    response = prefix_raw(public_channel, path, tokens["owner"], X_File_SHA256=WRONG)

    assert_refused(response, "the request header X-File-SHA256 declares")


def test_quetz_checks_its_query_parameter_and_the_request_headers(public_channel, tokens, packages):
    path = packages.make("quetzed", "1.0")
    owner = tokens["owner"]

    wrong_query = quetz(public_channel, path, owner, WRONG)
    assert_refused(wrong_query, "the query parameter sha256 declares")
    wrong_header = quetz(public_channel, path, owner, sha256_of(path), X_Checksum_Sha256=WRONG)
    assert_refused(wrong_header, "the request header X-Checksum-Sha256 declares")


@pytest.mark.parametrize(
    ("header", "algorithm"),
    [
        ("X-File-SHA256", "sha256"),
        ("X-Checksum-Sha256", "sha256"),
        ("X-Checksum-Sha1", "sha1"),
        ("X-Checksum-Md5", "md5"),
    ],
)
def test_a_put_checks_each_digest_header(header, algorithm, public_channel, tokens, packages):
    path = packages.make("putted", "1.0")
    wrong = "0" * len(digests_of(path)[algorithm])

    refused = put(public_channel, path, tokens["owner"], **{header: wrong})
    assert_refused(refused, f"{algorithm} mismatch: the request header {header} declares {wrong}")
    accepted = put(public_channel, path, tokens["owner"], **{header: digests_of(path)[algorithm]})

    assert accepted.status_code == 201, accepted.content


def test_right_digests_everywhere_are_accepted_whatever_their_case(
    public_channel, tokens, packages
):
    path = packages.make("right", "1.0")
    digests = digests_of(path)

    response = prefix_multipart(
        public_channel, path, tokens["owner"], X_File_SHA256=digests["sha256"].upper(),
        X_Checksum_Sha1=digests["sha1"], X_Checksum_Md5=digests["md5"],
    )  # fmt: skip

    assert response.status_code == 201, response.content
    assert PackageFile.objects.get().sha256 == digests["sha256"]
