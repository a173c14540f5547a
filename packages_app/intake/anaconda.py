"""Uploads in the anaconda.org protocol (anaconda-client, ``rattler-build upload anaconda``).

An upload takes three requests, which any web processes of any hosts may answer:

1. **stage** names the owner (a Wharf channel), the file, its sha256 and its labels.
   Access, the file name and the re-upload rule are checked; the answer is a
   :class:`Ticket`, signed with the site's secret key, which the client sends back as
   ``dist_id``, and the URL to post the bytes to.
2. **the bytes**, a multipart POST to that URL without credentials: the ticket comes as
   the form field ``dist_id`` ahead of the file and is checked before a byte is kept.
   The bytes are hashed while spooled, compared with the sha256 staged (and with
   ``Content-MD5``), and stored where the ticket says, recorded as a staged object
   (:mod:`packages_app.staging`) parked until ``WHARF_STAGED_UPLOAD_SECONDS`` from now.
   Nothing is visible yet.
3. **commit**, by the user who staged: the parked object is taken over and
   :func:`.uploads.accept` records it as every upload is recorded (archive checks,
   quota, the re-upload rule, audit, index). A commit that fails deletes the bytes.

Bytes never committed lapse at their deadline and the cleanup's sweep deletes them, as
it deletes what a killed upload left.
"""

import base64
import binascii
import re
import uuid
from dataclasses import asdict, dataclass
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.db import IntegrityError
from django.utils import timezone

from channels_app.models import Channel
from packages_app import staging
from packages_app.files import labels
from packages_app.intake import archives, cleanup, reuploads, uploads
from packages_app.intake.uploads import UploadError
from packages_app.models import PackageFile

SALT = "wharf.anaconda.ticket"
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
BY_FORCE = (
    "Upload it with --force (anaconda-client) or force=True (rattler-build), which "
    "deletes the stored file first, or delete it yourself."
)


def lifetime():
    return settings.WHARF_STAGED_UPLOAD_SECONDS


@dataclass(frozen=True)
class Ticket:
    """One staged upload: where its bytes go and what they must be."""

    channel_id: int
    subdir: str
    filename: str
    sha256: str
    labels: list | None
    user_id: int
    key: str  # the folder of its object, and the name its staged record is parked as

    def dumps(self):
        return signing.dumps(asdict(self), salt=SALT, compress=True)

    @classmethod
    def loads(cls, text, max_age=None):
        """The ticket ``text`` stands for; 400 if this site did not sign it, 403 once
        older than ``max_age`` seconds."""
        try:
            return cls(**signing.loads(str(text), salt=SALT, max_age=max_age))
        except signing.SignatureExpired:
            raise UploadError(
                f"This upload was staged more than {max_age} seconds ago; stage it again.",
                status=403,
            ) from None
        except (signing.BadSignature, TypeError, ValueError):
            raise UploadError(
                "dist_id is not an upload this server staged; stage the file first.",
                field="dist_id",
            ) from None

    def storage_path(self, channel):
        return uploads.new_storage_path(channel, self.subdir, self.filename, self.key)


def stage(channel, uploader, name, version, subdir, filename, body):
    """Check an upload the client announces (the stage request's JSON ``body``) and
    return its :class:`Ticket`; raise UploadError or reuploads.Conflict (409)."""
    if not isinstance(body, dict):
        raise UploadError("Send the stage request as a JSON object.")
    kind = str(body.get("distribution_type") or "conda").lower()
    if kind != "conda":
        raise UploadError(
            f"Wharf stores conda packages only, not '{kind}'.", field="distribution_type"
        )
    sha256 = body.get("sha256")
    if not isinstance(sha256, str) or not SHA256.match(sha256):
        raise UploadError("Give the file's sha256 as 64 hex digits.", field="sha256")
    file_labels = _labels(body.get("channels"))
    if subdir not in archives.SUBDIRS:
        raise UploadError(f"'{subdir}' is not a known platform.", field="subdir")
    try:
        archives.check_filename(filename)
    except archives.InvalidPackage as exc:
        raise UploadError(str(exc), field="filename") from exc
    if not filename.startswith(f"{name}-{version}-"):
        raise UploadError(
            f"The file name '{filename}' is not one of package '{name}' version '{version}' "
            f"(it must start with '{name}-{version}-').",
            field="filename",
        )
    stored = PackageFile.objects.filter(channel=channel, subdir=subdir, filename=filename).first()
    reuploads.judge(
        channel, subdir, filename, sha256.lower(), stored.sha256 if stored else None,
        labels=file_labels, stored_labels=stored.label_names if stored else (),
        how_to_replace=BY_FORCE,
    )  # fmt: skip
    return Ticket(channel.pk, subdir, filename, sha256.lower(), file_labels, uploader.pk,
                  uuid.uuid4().hex)  # fmt: skip


def _labels(named):
    """The labels of anaconda's ``channels`` (None: none named, so main)."""
    if named is None:
        return None
    if isinstance(named, str):
        named = [named]
    if not isinstance(named, list) or not all(isinstance(n, str) for n in named):
        raise UploadError("Give the labels as a list of names.", field="channels")
    try:
        return labels.for_upload(named)
    except labels.LabelError as exc:
        raise UploadError(exc.message, field="channels") from None


def receive(request):
    """Take the bytes of a staged upload (the multipart POST to the staged URL), store
    them parked for the commit; return the :class:`Ticket`."""
    found = {}

    def check_ticket(fields):
        ticket = Ticket.loads(_field(fields, "dist_id") or "", max_age=lifetime())
        declared = _field(fields, "Content-Length")
        if declared and declared.isdigit() and int(declared) > settings.WHARF_MAX_UPLOAD_SIZE:
            raise uploads.too_large(int(declared))
        found["ticket"] = ticket
        return ticket.filename

    if request.content_type != "multipart/form-data":
        raise UploadError(
            "Send the staged file as multipart/form-data: the stage answer's form_data "
            "fields, then the part 'file'.",
            status=415,
        )
    stream = uploads.body_stream(request)
    received, fields = uploads.receive_multipart(
        request, stream, ("dist_id", "Content-MD5", "Content-Length"), before_file=check_ticket
    )
    try:
        ticket = found.get("ticket")
        if ticket is None:
            raise UploadError("The form field 'dist_id' must come before the file.")
        _check_digests(received, ticket, fields)
        channel = Channel.objects.filter(pk=ticket.channel_id).first()
        if channel is None:
            raise UploadError("The channel of this upload was deleted.", status=404)
        uploads.check_quota(channel, ticket.subdir, received)
        _park(channel, ticket, received)
    finally:
        received.discard()
        cleanup.now_and_then()
    return ticket


def _field(fields, name):
    values = fields.get(name) or []
    return values[-1].strip() if values else None


def _check_digests(received, ticket, fields):
    if received.sha256 != ticket.sha256:
        raise UploadError(
            f"sha256 mismatch: the upload was staged with sha256 {ticket.sha256} but the "
            f"received bytes hash to {received.sha256}; nothing was kept.",
            field="sha256",
        )
    length = _field(fields, "Content-Length")
    if length and length != str(received.size):
        raise UploadError(
            f"Content-Length says {length} bytes but {received.size} arrived; nothing was kept.",
            field="Content-Length",
        )
    md5 = _field(fields, "Content-MD5")
    if md5:
        try:
            declared = base64.b64decode(md5, validate=True).hex()
        except binascii.Error:
            raise UploadError("Content-MD5 is not base64.", field="Content-MD5") from None
        if declared != received.md5:
            raise UploadError(
                f"Content-MD5 mismatch: declared {md5}, the received bytes have "
                f"{base64.b64encode(bytes.fromhex(received.md5)).decode()}; nothing was kept.",
                field="Content-MD5",
            )


def _park(channel, ticket, received):
    path = ticket.storage_path(channel)
    if PackageFile.objects.filter(storage_path=path).exists():
        raise UploadError("This upload was committed already.", status=409)
    until = timezone.now() + timedelta(seconds=lifetime())
    try:
        with staging.stage(channel, [path]) as staged:
            uploads.store_bytes(channel, ticket.subdir, received, path)
            staged.park(ticket.key, until)
    except IntegrityError:
        raise UploadError(
            "The file of this upload was received already; commit it.", status=409
        ) from None
    except staging.StagingLost as exc:
        raise UploadError(
            f"The package could not be stored ({exc}); try again.", status=503
        ) from exc


def commit(channel, user, subdir, filename, body, request=None):
    """Record the bytes a ticket (``body["dist_id"]``) parked, as an upload by ``user``;
    return the :class:`.uploads.Accepted`."""
    dist_id = body.get("dist_id") if isinstance(body, dict) else None
    if not dist_id:
        raise UploadError("Send the dist_id the stage request answered.", field="dist_id")
    ticket = Ticket.loads(dist_id)
    if (ticket.channel_id, ticket.subdir, ticket.filename) != (channel.pk, subdir, filename):
        raise UploadError(
            f"This dist_id was staged for another file than {subdir}/{filename} of "
            f"'{channel.name}'.",
            field="dist_id",
        )
    if ticket.user_id != user.pk:
        raise UploadError("This upload was staged by someone else.", status=403)
    path = ticket.storage_path(channel)
    done = PackageFile.objects.filter(storage_path=path).first()
    if done is not None:  # committed by a commit whose answer was lost
        return uploads.Accepted(done, reuploads.Outcome.ALREADY_THERE)
    try:
        with staging.adopt(channel, [path], ticket.key) as staged:
            received = uploads.receive_stored(path, filename)
            if received.sha256 != ticket.sha256:
                received.discard()
                raise UploadError("The stored bytes no longer match their sha256.", status=500)
            return uploads.accept(
                channel, received, user, request=request, labels=ticket.labels,
                staged=staged, subdir=subdir,
            )  # fmt: skip
    except staging.StagingLost:
        raise UploadError(
            "No upload waits for commit under this dist_id: its file was never sent, or "
            f"it waited more than {lifetime()} seconds and was deleted. Upload it again.",
            status=404,
        ) from None
    finally:
        cleanup.now_and_then()
