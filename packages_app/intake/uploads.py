"""Receiving package uploads: read, validate, store, hand over for indexing.

The body is streamed to a temporary file while it is hashed and measured; a package is
never held in memory. Everything a client can get wrong is checked before anything is
stored, so a refused upload leaves the channel exactly as it was.
"""

import contextlib
import hashlib
import logging
import os
import tempfile
import uuid
from dataclasses import dataclass, field

import multipart
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.errors import DomainError
from channels_app.models import Channel
from packages_app import staging, storage
from packages_app.files import labels
from packages_app.files.changes import file_change
from packages_app.index import repodata
from packages_app.index import store as index_store
from packages_app.intake import archives, cleanup, digests, reuploads
from packages_app.models import PackageFile
from registry import metrics

log = logging.getLogger(__name__)
CHUNK = 1024 * 1024


class UploadError(DomainError):
    """An upload refused (400 unless its ``status`` says otherwise); nothing was kept."""


@dataclass
class ReceivedFile:
    path: str
    filename: str
    size: int
    sha256: str
    md5: str
    # False for a file Wharf did not write itself (an import): it is never deleted.
    temporary: bool = True
    # The open handle that locks a temporary file while it is ours (.cleanup.hold).
    lock: object = field(default=None, repr=False, compare=False)

    def discard(self):
        if self.temporary:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        if self.lock is not None:
            self.lock.close()

    @classmethod
    def from_path(cls, path, filename=None):
        """Describe a package file already on disk, hashing it in one pass."""
        sha256, md5, size = hashlib.sha256(), hashlib.md5(), 0  # noqa: S324 - repodata md5
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                sha256.update(chunk)
                md5.update(chunk)
                size += len(chunk)
        name = filename or os.path.basename(path)
        return cls(str(path), name, size, sha256.hexdigest(), md5.hexdigest(), temporary=False)


def too_large(size=None):
    limit = settings.WHARF_MAX_UPLOAD_SIZE
    shown = f" ({size} bytes)" if size is not None else ""
    return UploadError(f"The package{shown} is larger than the limit of {limit} bytes.", status=413)


def body_stream(request):
    """The raw request body, also when it comes chunked (no Content-Length)."""
    length = request.META.get("CONTENT_LENGTH")
    if length:
        try:
            size = int(length)
        except ValueError as exc:
            raise UploadError("Content-Length is not a number.") from exc
        if size > settings.WHARF_MAX_UPLOAD_SIZE + 64 * 1024:
            raise too_large(size)
        return _Body(request, size)
    if request.META.get("wsgi.input_terminated"):
        return request.META["wsgi.input"]
    raise UploadError("Send the package with a Content-Length or chunked encoding.", status=411)


class _Body:
    """A body with a Content-Length; one that ends early is refused, not taken as whole."""

    def __init__(self, stream, length):
        self.stream = stream
        self.length = length
        self.received = 0

    def read(self, size):
        data = self.stream.read(size)
        self.received += len(data)
        if not data and size and self.received < self.length:
            raise UploadError(
                f"The body ended after {self.received} of the {self.length} bytes its "
                "Content-Length announced; the upload was interrupted.",
            )
        return data


class _Sink:
    """A temporary file that hashes and measures what is written to it, and checks the
    digests declared for it (:mod:`.digests`) when it is finished."""

    def __init__(self, filename, declared=()):
        fd, self.path = tempfile.mkstemp(
            prefix=cleanup.TEMP_PREFIX, dir=settings.FILE_UPLOAD_TEMP_DIR
        )
        self.file = os.fdopen(fd, "wb")
        self.lock = cleanup.hold(self.path)  # a process that dies lets go of it
        self.filename = filename
        self.size = 0
        self.declared = list(declared)
        self.hashes = digests.Hashes(self.declared)

    def write(self, chunk):
        self.size += len(chunk)
        if self.size > settings.WHARF_MAX_UPLOAD_SIZE:
            raise too_large()
        self.hashes.update(chunk)
        self.file.write(chunk)

    def finish(self):
        self.file.close()
        received = ReceivedFile(
            self.path, self.filename, self.size, self.hashes.hexdigest("sha256"),
            self.hashes.hexdigest("md5"), lock=self.lock,
        )  # fmt: skip
        try:
            if self.size == 0:
                raise UploadError("The uploaded file is empty.")
            digests.check(self.declared, self.hashes)
        except BaseException:
            received.discard()
            raise
        return received

    def abort(self):
        self.file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self.lock.close()


def receive_raw(stream, filename, declared=()):
    """A body that is the package itself (quetz uploads, older rattler-build, PUT);
    ``declared``: the digests the client declared for it (:mod:`.digests`)."""
    _check_filename(filename)
    sink = _Sink(filename, declared)
    try:
        while chunk := stream.read(CHUNK):
            sink.write(chunk)
    except BaseException:
        sink.abort()
        raise
    return sink.finish()


# A form field of an upload (a label name, say) longer than this is not a field value.
MAX_FIELD_BYTES = 4096


def receive_multipart(request, stream, fields=(), *, before_file=None):
    """A multipart/form-data body with one part named ``file``, as rattler-build sends;
    returns (the file, {field: [values]} of the text parts named in ``fields``).

    The file name comes from the part header ``x-file-name`` (or the part's filename).
    Its sha256 is checked against the part header ``x-file-sha256`` and against every
    digest the request headers declare.
    ``before_file``, if given, is called with the text fields read so far
    ({field: [str]}) when the file part starts, before a byte of it is kept: it may refuse
    the upload by raising, and returns the file's name (None: the part's own).
    """
    _, options = multipart.parse_options_header(request.META.get("CONTENT_TYPE", ""))
    boundary = options.get("boundary")
    if not boundary:
        raise UploadError("multipart/form-data without a boundary.")
    sink = None
    received = None
    values = {name: [] for name in fields}
    try:
        with multipart.PushMultipartParser(boundary, max_segment_count=16) as parser:
            segment = None
            while not parser.closed:
                chunk = stream.read(CHUNK)
                for event in parser.parse(chunk):
                    if isinstance(event, multipart.MultipartSegment):
                        segment = event
                        if segment.name == "file" and received is None:
                            filename = segment.header("X-File-Name") or segment.filename or ""
                            if before_file is not None:
                                filename = before_file(_texts(values)) or filename
                            _check_filename(filename)
                            declared = digests.in_request_headers(request.META) + digests.given(
                                "sha256", segment.header("X-File-Sha256"),
                                "the header x-file-sha256 of the part 'file'",
                            )  # fmt: skip
                            sink = _Sink(filename, declared)
                        elif segment.name in values:
                            values[segment.name].append(b"")
                    elif event is None:
                        if sink is not None and segment.name == "file":
                            received = sink.finish()
                            sink = None
                        segment = None
                    elif sink is not None and segment is not None and segment.name == "file":
                        sink.write(event)
                    elif segment is not None and segment.name in values:
                        value = values[segment.name][-1] + event
                        if len(value) > MAX_FIELD_BYTES:
                            raise UploadError(
                                f"The form field '{segment.name}' is longer than "
                                f"{MAX_FIELD_BYTES} bytes."
                            )
                        values[segment.name][-1] = value
                if not chunk:
                    break
    except BaseException as exc:
        if received:
            received.discard()
        if isinstance(exc, multipart.MultipartError):
            raise UploadError(f"The multipart body is malformed ({exc}).") from exc
        raise
    finally:
        if sink is not None:
            sink.abort()
    if received is None:
        raise UploadError("The multipart body has no part named 'file' with the package.")
    try:
        return received, _texts(values)
    except UploadError:
        received.discard()
        raise


def _texts(values):
    try:
        return {name: [v.decode() for v in found] for name, found in values.items()}
    except UnicodeDecodeError:
        raise UploadError("A form field of the upload is not UTF-8 text.") from None


def receive_stored(path, filename):
    """A package already in storage at ``path``, copied to a temporary file and hashed
    (its declared digests are the caller's to compare)."""
    sink = _Sink(filename)
    try:
        for block in storage.blocks(path):
            sink.write(block)
    except BaseException:
        sink.abort()
        raise
    return sink.finish()


def _check_filename(filename):
    try:
        archives.check_filename(filename)
    except archives.InvalidPackage as exc:
        raise UploadError(str(exc)) from exc


@dataclass
class Accepted:
    """What became of an upload: the channel's file of that name, and the :class:`Outcome`
    (new, replaced, or already there with the same bytes, when nothing changed)."""

    package_file: PackageFile
    outcome: reuploads.Outcome

    @property
    def already_there(self):
        return self.outcome is reuploads.Outcome.ALREADY_THERE


def accept(channel, received, uploader, *, force=False, request=None, labels=None,
           staged=None, subdir=None):  # fmt: skip
    """Validate a received file and publish it in ``channel`` with ``labels`` (checked
    names; None: main, or for a replacement the labels of the file it replaces); return
    an :class:`Accepted`.

    ``subdir``: the subdir the client named (a PUT's or an anaconda stage's URL); a
    package of another is refused.
    A file of the same name already there is judged by :mod:`.reuploads`: the same bytes
    change nothing, other bytes are a 409 unless ``force`` is given (the caller has checked
    that ``force`` is allowed), which replaces the file.

    Accepted or refused, this process's upload temporary folder is then cleaned now and
    then: each web process deletes what killed uploads left there, which Celery workers in
    other containers cannot see (:mod:`packages_app.intake.cleanup`).

    ``staged``: a :class:`~packages_app.staging.Staging` whose one path holds these bytes
    in storage already (an upload in two requests); it is recorded instead of a copy.
    """
    try:
        try:
            metadata = archives.inspect_package(received.path, received.filename)
        except archives.InvalidPackage as exc:
            raise UploadError(str(exc), status=422) from exc
        if subdir is not None and metadata.subdir != subdir:
            raise UploadError(
                f"The URL puts {received.filename} in subdir '{subdir}' but its "
                f"info/index.json says subdir '{metadata.subdir}'; send it to "
                f"{metadata.subdir}/{received.filename}."
            )
        return _store(channel, received, metadata, uploader, force, labels, request, staged)
    finally:
        received.discard()
        cleanup.now_and_then()


def _judge(channel, subdir, received, force, file_labels):
    """The stored file of the received file's name (or None) and the outcome."""
    stored = (
        PackageFile.objects.filter(channel=channel, subdir=subdir, filename=received.filename)
        .select_related("channel")
        .prefetch_related("labels")
        .first()
    )
    outcome = reuploads.judge(
        channel, subdir, received.filename, received.sha256,
        stored.sha256 if stored else None, force=force, labels=file_labels,
        stored_labels=stored.label_names if stored else (),
    )  # fmt: skip
    return stored, outcome


def _store(channel, received, metadata, uploader, force, file_labels, request, staged=None):
    subdir = metadata.subdir
    stored, outcome = _judge(channel, subdir, received, force, file_labels)
    if outcome is reuploads.Outcome.ALREADY_THERE:
        return Accepted(stored, outcome)
    check_quota(channel, subdir, received)  # before copying bytes that would be refused
    if staged is not None:  # stored already, under that staging (see accept)
        return _record(channel, received, metadata, uploader, force, file_labels, request,
                       staged, staged.paths[0], outcome)  # fmt: skip
    path = new_storage_path(channel, subdir, received.filename)
    # Recorded before a byte is stored: if this process dies before the row commits, a
    # sweep deletes the object (packages_app/staging.py). Deleted at the end unless
    # committed, whatever happens.
    with staging.stage(channel, [path]) as staged:
        storage_path = store_bytes(channel, subdir, received, path)
        return _record(channel, received, metadata, uploader, force, file_labels, request,
                       staged, storage_path, outcome)  # fmt: skip


def _record(channel, received, metadata, uploader, force, file_labels, request, staged,
            storage_path, outcome):  # fmt: skip
    """Write the file's row for the bytes stored at ``storage_path`` under ``staged``."""
    subdir = metadata.subdir
    fields = package_file_fields(received, metadata, storage_path, uploader)
    try:
        with file_change(request=request, actor=uploader) as change:
            check_quota(channel, subdir, received, change=change)
            replaced = None  # the sha256 of the file replaced
            if outcome is reuploads.Outcome.REPLACE:
                package_file, replaced = _replace(change, channel, subdir, received, fields)
            else:
                package_file = PackageFile.objects.create(
                    channel=channel, subdir=subdir, filename=received.filename, **fields
                )
            touched = labels.attach(package_file, file_labels)
            change.touch(channel, subdir, [metadata.name], touched)
            details = {
                "subdir": subdir, "filename": received.filename, "sha256": received.sha256
            }  # fmt: skip
            if replaced:
                details["replaced_sha256"] = replaced
            action = "package.replaced" if replaced else "package.uploaded"
            change.audit(action, channel, **details, labels=package_file.label_names)
            staged.commit()
    except IntegrityError as exc:
        # The same name was stored meanwhile by another upload: judge again against it.
        stored, outcome = _judge(channel, subdir, received, force, file_labels)
        if outcome is reuploads.Outcome.ALREADY_THERE:
            return Accepted(stored, outcome)
        raise UploadError(
            f"{channel.name}/{subdir}/{received.filename} was stored by another upload "
            "meanwhile; send it again.",
            status=409,
        ) from exc
    except staging.StagingLost as exc:
        raise UploadError(
            f"The package could not be stored ({exc}); nothing was kept. Try again.",
            status=503,
        ) from exc
    metrics.UPLOAD_BYTES.inc(received.size)
    log.info("accepted %s/%s/%s", channel.name, subdir, received.filename)
    return Accepted(package_file, outcome)


def _replace(change, channel, subdir, received, fields):
    """Replace the stored file of the name (or store it, if it went meanwhile); return the
    file and the replaced file's sha256 (None: there was none)."""
    named = PackageFile.objects.filter(channel=channel, subdir=subdir, filename=received.filename)
    old = next(iter(change.lock_files(named)), None)
    package_file, _ = PackageFile.objects.update_or_create(
        channel=channel, subdir=subdir, filename=received.filename, defaults=fields
    )
    if old is None:
        return package_file, None
    staging.discard_on_commit(channel, old.storage_path)
    return package_file, old.sha256


def check_quota(channel, subdir, received, *, change=None):
    """Refuse (413) a file that would take the channel past its storage quota.

    A file it replaces no longer counts. With ``change`` (the storing one) the channel
    row is locked first, so that concurrent uploads to one channel are counted one after
    the other and cannot together pass the quota.
    """
    quota = quota_of(channel, change=change)
    if quota is None:
        return
    used = (
        PackageFile.objects.filter(channel=channel)
        .exclude(subdir=subdir, filename=received.filename)
        .aggregate(total=Sum("size"))["total"]
        or 0
    )
    if used + received.size > quota:
        raise over_quota(channel, quota, used, received.size)


def quota_of(channel, *, change=None):
    """The channel's quota in bytes (None: no limit), read afresh.

    With ``change`` (a :class:`~packages_app.files.changes.FileChange`) the channel row is
    locked for the rest of its transaction.
    """
    if change is not None:
        return change.lock_channel(channel).effective_quota
    return Channel.objects.get(pk=channel.pk).effective_quota


def over_quota(channel, quota, used, size):
    return UploadError(
        f"Channel '{channel.name}' would exceed its storage quota of {quota} bytes: it "
        f"holds {used} bytes and this package has {size}. Delete files or ask "
        "a site administrator for a larger quota.",
        status=413,
    )


def check_size(received):
    """Refuse what an upload's body checks refuse: an empty or too large file."""
    if received.size == 0:
        raise UploadError("The uploaded file is empty.")
    if received.size > settings.WHARF_MAX_UPLOAD_SIZE:
        raise too_large(received.size)


def new_storage_path(channel, subdir, filename, key=None):
    """Where a newly accepted package file goes (``key``: the upload's own folder name,
    hex; default a new one).

    Every accepted upload gets its own object, so deleting or replacing one file can
    never take bytes from under another upload that happens at the same moment.
    """
    return f"packages/{channel.pk}/{subdir}/{key or uuid.uuid4().hex}/{filename}"


def store_bytes(channel, subdir, received, path):
    """Copy a received package into storage at ``path`` (staged: packages_app/staging.py)."""
    try:
        with open(received.path, "rb") as fh:
            stored = default_storage.save(path, File(fh))
    except storage.ERRORS as exc:
        with contextlib.suppress(*storage.ERRORS):
            storage.delete_package_object(path)  # the part written before the failure
        full = storage.is_full(exc)
        raise UploadError(
            f"The package could not be stored ({getattr(exc, 'strerror', None) or exc}); "
            "nothing was kept. "
            + ("The server's storage is full." if full else "Try again later."),
            status=507 if full else 503,
        ) from exc
    if stored != path:  # a storage that renamed it would escape the staging record
        storage.delete_package_object(stored)
        raise RuntimeError(f"storage wrote {stored} instead of {path}")
    return stored


def package_file_fields(received, metadata, storage_path, uploader):
    """The PackageFile columns of an accepted package (all but channel, subdir, filename)."""
    now = timezone.now()
    return {
        "name": metadata.name,
        "version": metadata.index["version"],
        "build": metadata.index["build"],
        "size": received.size,
        "sha256": received.sha256,
        "md5": received.md5,
        "record_json": repodata.build_record(
            metadata.index,
            size=received.size,
            sha256=received.sha256,
            md5=received.md5,
            run_exports=metadata.run_exports,
            indexed_at=now,
        ),
        "run_exports": metadata.run_exports,
        "storage_path": storage_path,
        "uploader": uploader if uploader and uploader.is_authenticated else None,
        "uploaded_at": now,
        "state": PackageFile.State.PENDING,
        "failure_reason": "",
        "indexed_at": None,
        "yanked_at": None,  # a replacement is new bytes: the old file's yank is not its own
        "yank_reason": "",
        **archives.about_fields(metadata.about),
    }


def forget_channel_storage(channel):
    """Arrange for a channel's stored files to go once its deletion commits."""
    folders = [f"packages/{channel.pk}", index_store.index_folder(channel.pk, "").rstrip("/")]

    def cleanup():
        for folder in folders:
            storage.delete_tree(folder)

    transaction.on_commit(cleanup)
