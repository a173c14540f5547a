"""Bad input is refused with a 4xx naming the problem, and changes nothing.

Every case compares a snapshot of the database rows, the stored files, the upload temp
directory and the served repodata taken before the request with one taken after it.
The malformed archives come from tests/corpus.py.
"""

import hashlib
import io
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from accounts.models import ApiToken
from channels_app.lifecycle import create_channel
from channels_app.models import Channel
from packages_app import runner
from packages_app.index import repodata
from packages_app.intake import archives
from packages_app.models import Package, PackageFile, SubdirIndex, SubdirPackage

from ..corpus import ARCHIVE_CASES, MIB, UNPACKED_LIMIT, Corpus, Zeros, hardlink, member, symlink
from ..packages import eventually, multipart_body, sha256_of, upload

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    return Corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture
def channel(public_channel, client_for, packages, settings, tmp_path):
    """The public channel holding one indexed package, with a low limit on unpacked bytes
    and an upload temp directory of its own."""
    settings.WHARF_MAX_UNPACKED_SIZE = UNPACKED_LIMIT
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "upload-tmp")
    Path(settings.FILE_UPLOAD_TEMP_DIR).mkdir()
    kept = packages.make("kept", "1.0")
    assert upload(client_for("owner"), public_channel.name, kept).status_code == 201
    return public_channel


def settle(channel):
    """Wait until every index of the channel is published, its .bz2 included."""
    runner.wait_for_background_work()

    def settled():
        for index in SubdirIndex.objects.filter(channel=channel):
            assert index.is_current and index.bz2_due_at is None and index.lease_until is None
            files = index.published_files
            if repodata.REPODATA in files:
                bz2 = files.get(repodata.REPODATA_BZ2, {})
                assert bz2.get("source") == files[repodata.REPODATA]["etag"]

    eventually(settled)


def files_under(folder):
    root = Path(folder)
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in root.rglob("*")
        if path.is_file()
    }


def served(client, channel, subdir):
    response = client.get(f"/{channel.name}/{subdir}/repodata.json")
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response.status_code, body


def snapshot(channel):
    """Everything an upload could change: rows, stored files, temp files, repodata."""
    settle(channel)
    client = APIClient()
    return {
        "channels": list(Channel.objects.order_by("pk").values()),
        "package files": list(PackageFile.objects.order_by("pk").values()),
        "packages": list(Package.objects.order_by("pk").values()),
        "subdir indexes": list(SubdirIndex.objects.order_by("pk").values()),
        "subdir packages": list(SubdirPackage.objects.order_by("pk").values()),
        "storage": files_under(django_settings.STORAGE_DIR),
        "upload temp": files_under(django_settings.FILE_UPLOAD_TEMP_DIR),
        "repodata": {subdir: served(client, channel, subdir) for subdir in ("noarch", "linux-64")},
    }


def assert_refused(response, status, words):
    assert response.status_code == status, response.content
    assert words in response.json()["detail"], response.json()["detail"]


# Malformed archives ---------------------------------------------------------------------


@pytest.mark.parametrize("case", ARCHIVE_CASES, ids=lambda case: case.id)
def test_it_refuses_a_bad_archive_and_changes_nothing(case, corpus, channel, client_for, tmp_path):
    filename, data = corpus.build(case)
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    body, content_type = multipart_body(path, filename=filename)
    before = snapshot(channel)

    started = time.monotonic()
    response = client_for("owner").generic(
        "POST", f"/api/v1/upload/{channel.name}", body, content_type=content_type
    )

    assert_refused(response, case.status, case.words)
    # Generous: the bombs stop at the limit instead of unpacking 64 MiB or a TiB.
    assert time.monotonic() - started < 10
    assert snapshot(channel) == before


QUETZ_CASES = ["conda-truncated", "pkg-symlink-outside", "pkg-zstd-bomb", "tar-bz2-bomb",
               "index-name-disagrees", "index-depends-bad-spec"]  # fmt: skip


@pytest.mark.parametrize(
    "case", [c for c in ARCHIVE_CASES if c.id in QUETZ_CASES], ids=lambda case: case.id
)
def test_it_refuses_a_bad_archive_sent_quetz_style(case, corpus, channel, tokens):
    filename, data = corpus.build(case)
    before = snapshot(channel)

    response = APIClient().generic(
        "POST",
        f"/api/channels/{channel.name}/upload/{quote(filename)}",
        data,
        content_type="application/octet-stream",
        HTTP_X_API_KEY=tokens["owner"],
    )

    assert_refused(response, case.status, case.words)
    assert snapshot(channel) == before


def test_it_accepts_links_that_stay_inside_the_package(corpus, channel, client_for, tmp_path):
    filename, data = corpus.conda_pkg_with(
        member("lib/libfoo.so.1", b"\x7fELF"),
        symlink("lib/libfoo.so", "libfoo.so.1"),
        symlink("lib/root", ".."),
        hardlink("lib/libfoo-copy.so.1", "lib/libfoo.so.1"),
    )
    path = tmp_path / filename
    path.write_bytes(data)

    response = upload(client_for("owner"), channel.name, path)

    assert response.status_code == 201, response.content
    settle(channel)
    status, body = served(APIClient(), channel, "noarch")
    assert status == 200
    assert filename.encode() in body


def test_it_scans_a_highly_compressed_package_in_bounded_memory(corpus, settings, tmp_path):
    settings.WHARF_MAX_UNPACKED_SIZE = 1024 * MIB
    filename, data = corpus.conda_pkg_with(
        member("share/zeros.bin", Zeros(256 * MIB), size=256 * MIB)
    )
    path = tmp_path / filename
    path.write_bytes(data)

    tracemalloc.start()
    try:
        metadata = archives.inspect_package(path, filename)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert metadata.name == "victim"
    assert len(data) < MIB
    assert peak < 32 * MIB


# Requests that are wrong before any archive is read ------------------------------------


@dataclass
class Request:
    """What a transport case may use: the channel, the people and a valid package."""

    channel: Channel
    users: dict
    tokens: dict
    client_for: object
    corpus: Corpus
    settings: object
    tmp_path: Path
    secret: str = ""  # a token a case made before the snapshot
    other: bytes = b""  # :meth:`other_build`, once built

    @property
    def package(self):
        return self.corpus.conda_path

    def prefix(self, data=None, *, who="owner", channel=None, force=False, **part):
        """The prefix.dev upload as rattler-build sends it (multipart, part headers)."""
        path = self.tmp_path / "upload.bin"
        path.write_bytes(self.package.read_bytes() if data is None else data)
        part.setdefault("filename", self.package.name)
        body, content_type = multipart_body(path, **part)
        url = f"/api/v1/upload/{channel or self.channel.name}" + ("?force=true" if force else "")
        return self.client_for(who).generic("POST", url, body, content_type=content_type)

    def prefix_raw(self, data=None, *, who="owner", **headers):
        """The older prefix upload: the package is the body, its name in a header."""
        data = self.package.read_bytes() if data is None else data
        return self.client_for(who).generic(
            "POST", f"/api/v1/upload/{self.channel.name}", data,
            content_type="application/octet-stream", **headers,
        )  # fmt: skip

    def quetz(self, data=None, *, who="owner", channel=None, filename=None, sha256=None,
              **extra):  # fmt: skip
        """The quetz upload: the package is the body, the token an X-API-Key."""
        data = self.package.read_bytes() if data is None else data
        filename = quote(filename or self.package.name)
        url = f"/api/channels/{channel or self.channel.name}/upload/{filename}?force=false"
        if sha256:
            url += f"&sha256={sha256}"
        if who:
            extra["HTTP_X_API_KEY"] = self.tokens[who]
        return APIClient().generic(
            "POST", url, data, content_type="application/octet-stream", **extra
        )

    def other_build(self):
        """Different bytes under the file name of :attr:`package` (the same each call: an
        archive built again may differ in its time stamps)."""
        if not self.other:
            self.other = self.corpus.conda_pkg_with(member("share/extra.txt", b"another build\n"))[
                1
            ]
        return self.other

    def quota_short_by_one_byte(self):
        used = sum(PackageFile.objects.filter(channel=self.channel).values_list("size", flat=True))
        return used + self.package.stat().st_size - 1


def short_body(data, missing=100):
    """The WSGI input of a client that promised ``len(data)`` bytes and sent fewer."""
    return {"wsgi.input": io.BytesIO(data[:-missing]), "CONTENT_LENGTH": str(len(data))}


def upload_first(request):
    response = request.prefix()
    assert response.status_code == 201, response.content


def set_quota(request):
    request.channel.quota_bytes = request.quota_short_by_one_byte()
    request.channel.save()


def set_site_quota(request):
    request.settings.WHARF_CHANNEL_QUOTA_BYTES = request.quota_short_by_one_byte()


def malformed_multipart(request):
    boundary = "wharf-test-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{request.package.name}"\r\n\r\n'
    ).encode() + request.package.read_bytes()  # no closing boundary
    return request.client_for("owner").generic(
        "POST", f"/api/v1/upload/{request.channel.name}", body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )  # fmt: skip


def short_multipart(request, rework=lambda body: body):
    """A multipart upload of the package, ``rework``-ed, whose body breaks off early."""
    path = request.tmp_path / request.package.name
    path.write_bytes(request.package.read_bytes())
    body, content_type = multipart_body(path)
    return request.client_for("owner").generic(
        "POST", f"/api/v1/upload/{request.channel.name}", b"x",
        content_type=content_type, **short_body(rework(body)),
    )  # fmt: skip


def with_a_part_after_the_file(body):
    """The file part whole, then the start of another part (where the body breaks off)."""
    return body.removesuffix(b"--\r\n") + (
        b'\r\nContent-Disposition: form-data; name="attestation"\r\n\r\n' + b"{" * 200
    )


def chunked_over_size_limit(request):
    data = request.package.read_bytes()
    request.settings.WHARF_MAX_UPLOAD_SIZE = len(data) - 1
    # No Content-Length: the server reads until the chunked body ends.
    return request.quetz(b"", **{"wsgi.input": io.BytesIO(data), "wsgi.input_terminated": True})


def read_only_token(request):
    request.secret = ApiToken.create_for(request.users["owner"], "ci", read_only=True)[1]


def token_for_another_channel(request):
    elsewhere = create_channel(request.users["owner"], "elsewhere")
    request.secret = ApiToken.create_for(request.users["owner"], "ci", channels=[elsewhere])[1]


def with_secret(request, endpoint):
    """An upload with the token the case made (the owner's, narrowed)."""
    if endpoint == "quetz":
        return request.quetz(who=None, HTTP_X_API_KEY=request.secret)
    return request.prefix_raw(
        who=None,
        HTTP_AUTHORIZATION=f"Bearer {request.secret}",
        HTTP_X_FILE_NAME=request.package.name,
    )


def replaced_over_quota(request):
    """The channel holds the package; a larger build of it would pass the quota by 1."""
    upload_first(request)
    others = PackageFile.objects.filter(channel=request.channel).exclude(
        filename=request.package.name
    )
    used = sum(others.values_list("size", flat=True))
    request.settings.WHARF_CHANNEL_QUOTA_BYTES = used + len(request.other_build()) - 1


@dataclass(frozen=True)
class RequestCase:
    id: str
    send: object  # Request -> response
    status: int
    words: object  # str, or Request -> str
    prepare: object = None  # Request -> None, before the "before" snapshot


R = RequestCase
WRONG_SHA = "0" * 64


def taken(request):
    """The 409 to other bytes under the name of the file uploaded first: both digests."""
    stored = sha256_of(request.package)
    other = hashlib.sha256(request.other_build()).hexdigest()
    return (
        f"open-tools/noarch/{request.package.name} is already in the channel with other "
        f"content (sha256 {stored}, this file {other}); the stored file was left as it is. "
        "Upload it with ?force=true (channel owners) to replace the stored file."
    )


REQUEST_CASES = [
    R("empty-file-prefix", lambda r: r.prefix(b""), 400, "The uploaded file is empty"),
    R("empty-file-quetz", lambda r: r.quetz(b"", CONTENT_LENGTH="0"), 400,
      "The uploaded file is empty"),
    R("multipart-without-file-part", lambda r: r.prefix(field="attestation"), 400,
      "no part named 'file'"),
    R("multipart-malformed", malformed_multipart, 400, "The multipart body is malformed"),
    R("multipart-without-boundary",
      lambda r: r.client_for("owner").generic("POST", f"/api/v1/upload/{r.channel.name}", b"x",
                                              content_type="multipart/form-data"),
      400, "without a boundary"),
    R("sha256-mismatch-prefix", lambda r: r.prefix(sha256=WRONG_SHA), 400, "sha256 mismatch"),
    R("sha256-mismatch-prefix-raw",
      lambda r: r.prefix_raw(HTTP_X_FILE_NAME=r.package.name, HTTP_X_FILE_SHA256=WRONG_SHA), 400,
      "sha256 mismatch"),
    R("sha256-mismatch-quetz", lambda r: r.quetz(sha256=WRONG_SHA), 400, "sha256 mismatch"),
    R("raw-body-without-file-name", lambda r: r.prefix_raw(), 400, "carries no file name"),
    R("file-name-with-slash",
      lambda r: r.prefix_raw(HTTP_X_FILE_NAME="../victim-1.0-0.conda"), 400,
      "is not a plain file name"),
    R("file-name-with-backslash",
      lambda r: r.prefix(filename="..\\victim-1.0-0.conda"), 400, "is not a plain file name"),
    R("file-name-with-control-character-multipart",
      lambda r: r.prefix(filename="victim\x07-1.0-0.conda"), 400, "has control characters"),
    # In a header or the URL, refused before the upload view (registry/hygiene.py).
    R("file-name-with-control-character",
      lambda r: r.prefix_raw(HTTP_X_FILE_NAME="victim\x07-1.0-0.conda"), 400,
      "The X-File-Name header contains a control character"),
    R("file-name-with-control-character-quetz",
      lambda r: r.quetz(filename="victim\x1b-1.0-0.conda"), 400,
      "The URL path contains a control character"),
    R("file-name-overlong", lambda r: r.prefix(filename="v" * 250 + ".conda"), 400,
      "at most 255 are allowed"),
    R("file-name-overlong-in-utf8",
      lambda r: r.prefix_raw(HTTP_X_FILE_NAME="é" * 130 + ".conda"), 400,
      "at most 255 are allowed"),
    R("file-name-not-a-package", lambda r: r.quetz(filename="victim-1.0-0.zip"), 400,
      "must end in .conda or .tar.bz2"),
    R("content-length-lies-prefix", short_multipart, 400,
      "Content-Length announced"),
    R("content-length-lies-after-the-file-part",
      lambda r: short_multipart(r, with_a_part_after_the_file), 400,
      "Content-Length announced"),
    R("content-length-lies-quetz",
      lambda r: r.quetz(b"x", **short_body(r.package.read_bytes())), 400,
      "Content-Length announced"),
    R("content-length-not-a-number", lambda r: r.quetz(CONTENT_LENGTH="lots"), 400,
      "Content-Length is not a number"),
    R("size-limit-chunked-quetz", chunked_over_size_limit, 413, "larger than the limit"),
    R("unknown-channel-prefix", lambda r: r.prefix(channel="no-such-channel"), 404,
      "Channel 'no-such-channel' not found"),
    R("unknown-channel-quetz", lambda r: r.quetz(channel="no-such-channel"), 404,
      "Channel 'no-such-channel' not found"),
    R("unknown-channel-anonymous", lambda r: r.prefix(who=None, channel="no-such-channel"), 401,
      "needs credentials"),
    R("no-credentials-prefix", lambda r: r.prefix(who=None), 401, "Sign in or send a token"),
    R("no-credentials-quetz", lambda r: r.quetz(who=None), 401, "Sign in or send a token"),
    R("read-only-token-prefix", lambda r: with_secret(r, "prefix"), 403,
      "This token is read-only", prepare=read_only_token),
    R("read-only-token-quetz", lambda r: with_secret(r, "quetz"), 403,
      "This token is read-only", prepare=read_only_token),
    R("token-for-another-channel", lambda r: with_secret(r, "prefix"), 403,
      "limited to other channels", prepare=token_for_another_channel),
    R("member-may-not-upload", lambda r: r.prefix(who="member"), 403,
      "may not upload in channel 'open-tools' as member"),
    R("maintainer-may-not-force", lambda r: r.prefix(who="maintainer", force=True), 403,
      "may not replace packages"),
    # The same bytes again are no bad input: a 200 that changes nothing (test_uploads.py).
    R("other-bytes-under-a-taken-name-prefix", lambda r: r.prefix(r.other_build()), 409,
      taken, prepare=upload_first),
    R("other-bytes-under-a-taken-name-quetz", lambda r: r.quetz(r.other_build()), 409,
      taken, prepare=upload_first),
    R("same-bytes-with-other-labels", lambda r: r.prefix(before=[("label", "dev")]), 409,
      "uploading it again does not change its labels", prepare=upload_first),
    R("over-channel-quota-prefix", lambda r: r.prefix(), 413,
      "Channel 'open-tools' would exceed its storage quota", prepare=set_quota),
    R("over-channel-quota-quetz", lambda r: r.quetz(), 413, "would exceed its storage quota",
      prepare=set_quota),
    R("over-site-quota", lambda r: r.prefix(who="maintainer"), 413,
      "would exceed its storage quota", prepare=set_site_quota),
    R("over-quota-when-replacing", lambda r: r.prefix(r.other_build(), force=True), 413,
      "would exceed its storage quota", prepare=replaced_over_quota),
]  # fmt: skip


@pytest.mark.parametrize("case", REQUEST_CASES, ids=lambda case: case.id)
def test_it_refuses_a_bad_request_and_changes_nothing(
    case, corpus, channel, users, tokens, client_for, settings, tmp_path
):
    request = Request(channel, users, tokens, client_for, corpus, settings, tmp_path)
    if case.prepare:
        case.prepare(request)
    before = snapshot(channel)

    response = case.send(request)

    words = case.words(request) if callable(case.words) else case.words
    assert_refused(response, case.status, words)
    assert snapshot(channel) == before


# Quotas ----------------------------------------------------------------------------------


def test_it_fills_a_quota_to_the_last_byte(channel, client_for, corpus, settings):
    used = sum(PackageFile.objects.values_list("size", flat=True))
    settings.WHARF_CHANNEL_QUOTA_BYTES = used + corpus.conda_path.stat().st_size

    response = upload(client_for("owner"), channel.name, corpus.conda_path)

    assert response.status_code == 201, response.content


def test_it_counts_a_replaced_file_out_of_the_quota(channel, client_for, corpus, tmp_path):
    owner = client_for("owner")
    assert upload(owner, channel.name, corpus.conda_path).status_code == 201
    channel.quota_bytes = sum(PackageFile.objects.values_list("size", flat=True))
    channel.save()
    filename, data = corpus.conda(info=corpus.info)  # the same package, rezipped
    replacement = tmp_path / filename
    replacement.write_bytes(data)
    assert len(data) <= corpus.conda_path.stat().st_size

    response = upload(owner, channel.name, replacement, force=True)

    assert response.status_code == 201, response.content
    assert PackageFile.objects.get(filename=filename).sha256 == sha256_of(replacement)


def test_a_zero_channel_quota_lifts_the_site_quota(channel, client_for, corpus, settings):
    settings.WHARF_CHANNEL_QUOTA_BYTES = 1
    channel.quota_bytes = 0
    channel.save()

    response = upload(client_for("owner"), channel.name, corpus.conda_path)

    assert response.status_code == 201, response.content


def test_owners_see_usage_and_quota(channel, client_for, users, settings):
    settings.WHARF_CHANNEL_QUOTA_BYTES = 5 * MIB
    used = sum(PackageFile.objects.values_list("size", flat=True))

    mine = client_for("owner").get(f"/api/v1/channels/{channel.name}/").json()
    theirs = client_for("maintainer").get(f"/api/v1/channels/{channel.name}/").json()

    assert mine["storage"] == {"used": used, "quota": 5 * MIB}
    assert theirs["storage"] is None
    client = APIClient()
    client.force_login(users["owner"])
    page = client.get(f"/{channel.name}/settings/")
    assert page.status_code == 200
    assert "quota of <strong>5.0\xa0MB</strong>" in page.content.decode()


def test_only_site_administrators_set_a_quota_in_the_admin(channel, users, django_user_model):
    url = f"/admin/channels_app/channel/{channel.pk}/change/"
    owner = APIClient()
    owner.force_login(users["owner"])
    admin = APIClient()
    admin.force_login(django_user_model.objects.create_superuser("root", "r@example.org", "pw"))

    owners_page = owner.get(url)
    admins_page = admin.get(url)

    assert owners_page.status_code == admins_page.status_code == 200
    assert 'name="quota_bytes"' not in owners_page.content.decode()
    assert "Storage quota (bytes)" in owners_page.content.decode()  # shown, read-only
    assert 'name="quota_bytes"' in admins_page.content.decode()
