"""Importing many package files at once (existing channel directories, benchmarks).

Every file is checked exactly as an upload is: size, archive, ``info/index.json``, the
channel's quota, and — for a channel directory — that it sits in the folder of its
subdir. Archives are inspected in parallel processes; files are stored and recorded in
batches, one transaction per batch, and the index is rebuilt once at the end instead of
once per file. Files already in the channel are never changed: the same bytes are
skipped, different bytes under the same name are refused as a conflict.

A file whose name the channel already holds is judged by the rule uploads follow too
(:mod:`.reuploads`); an import never replaces a file.

An import can be killed at any moment and simply run again. Rows are committed per
batch (the unique file name makes a second row impossible); the storage objects of a
batch are staged (:mod:`packages_app.staging`) before they are written and taken back in
the transaction that commits their package files, so what a killed import stored without
committing is deleted by the next sweep, seconds later, or by the next import into the
channel. One import per channel runs at a time (:func:`exclusive`).
"""

import contextlib
import fcntl
import filecmp
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from django.db import IntegrityError, connection
from django.db.models import F, Sum
from django.utils import timezone

from accounts import audit
from accounts.errors import DomainError
from packages_app import runner, staging
from packages_app.files import labels
from packages_app.files.changes import file_change
from packages_app.index import rebuilds, repodata
from packages_app.intake import archives, exporting, reuploads, uploads
from packages_app.models import MAIN_LABEL, PackageFile, SubdirIndex

log = logging.getLogger(__name__)


class ImportBusy(DomainError):
    """Another import into the same channel is running."""

    status = 409


@dataclass
class ImportResult:
    total: int = 0
    imported: int = 0
    skipped: int = 0
    imported_bytes: int = 0
    refused: dict = field(default_factory=dict)  # path -> reason
    cleared: int = 0  # objects of an interrupted import that were deleted


@dataclass
class ChannelDirectory:
    """What a channel directory holds (:func:`read_channel_directory`)."""

    files: list = field(default_factory=list)  # (path, subdir), each file once
    misplaced: dict = field(default_factory=dict)  # path -> why it cannot be imported
    labels: dict = field(default_factory=dict)  # (subdir, filename) -> sorted labels
    yanked: dict = field(default_factory=dict)  # (subdir, filename) -> reason


def read_channel_directory(directory, subdirs=None):
    """The package files of a channel directory, the labels they are found under, those
    to import yanked, and the files that are not where a channel keeps them.

    A channel directory holds ``<subdir>/<file>.conda`` or ``.tar.bz2``, as conda-index
    and rattler-index read and write it; a file there carries label ``main``. Wharf's
    export (and anaconda.org's URLs) put other labels in ``label/<label>/<subdir>/``. A
    file found under several labels is imported once and carries each of them. Files a
    folder's repodata.json lists in ``removed`` are imported yanked: yanked in the
    channel it was exported from, or taken out by its maintainers (conda-index).
    Everything else (repodata, shards, caches, hidden files) is ignored. With
    ``subdirs``, only those subdir folders are read.
    """
    directory = Path(directory)
    found = ChannelDirectory()
    first = {}  # (subdir, filename) -> the path imported
    for root, folders, names in os.walk(directory):
        parts = Path(root).relative_to(directory).parts
        # label/ last: where two files of a name differ, the one in <subdir>/ is imported.
        folders[:] = sorted((f for f in folders if not f.startswith(".")),
                            key=lambda f: (not parts and f == "label", f))  # fmt: skip
        label, subdir, problem = _folder(parts)
        if subdir is not None and subdirs is not None and subdir not in subdirs:
            continue
        if subdir is not None and repodata.REPODATA in names:
            for key, reason in _removed(Path(root), label, subdir).items():
                found.yanked.setdefault(key, reason)  # main's reason, where it says so
        for name in sorted(names):
            if name.startswith(".") or archives.package_extension(name) is None:
                continue
            path = os.path.join(root, name)
            if subdir is None:
                if subdirs is None:
                    found.misplaced[path] = problem
                continue
            key = (subdir, name)
            if key not in first:
                first[key] = path
                found.files.append((path, subdir))
            elif not _same_bytes(first[key], path):
                found.misplaced[path] = (
                    f"Not the same file as {first[key]}: a channel holds one file of each "
                    "name, whatever its labels. Remove one of the two."
                )
                continue
            found.labels.setdefault(key, set()).add(label)
    found.labels = {key: sorted(names) for key, names in found.labels.items()}
    return found


NOT_IN_A_SUBDIR = (
    "Not in a subdir folder: a channel directory holds <subdir>/<package file>, with a "
    "subdir such as linux-64 or noarch, and label/<label>/<subdir>/<package file>."
)


def _folder(parts):
    """(label, subdir, None) for a folder that holds package files, else (None, None,
    why a package file there cannot be imported)."""
    if len(parts) == 1 and parts[0] in archives.SUBDIRS:
        return MAIN_LABEL, parts[0], None
    if len(parts) == 3 and parts[0] == "label" and parts[2] in archives.SUBDIRS:
        try:
            return labels.clean(parts[1]), parts[2], None
        except labels.LabelError as exc:
            return None, None, f"In label/{parts[1]}/: {exc.message}"
    return None, None, NOT_IN_A_SUBDIR


def _removed(folder, label, subdir):
    """{(subdir, filename): reason} for the files ``folder``'s repodata.json lists in
    ``removed``."""
    try:
        removed = orjson.loads((folder / repodata.REPODATA).read_bytes()).get("removed", [])
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return {}  # not an index; the package files are checked on their own
    where = exporting.label_root(label) / subdir / repodata.REPODATA  # the export's layout
    reason = f"Listed in 'removed' of the imported {where}."
    return {(subdir, name): reason for name in removed if isinstance(name, str)}


def _same_bytes(one, other):
    """Whether two files hold the same bytes (hard links of an export are not read)."""
    return os.path.samefile(one, other) or filecmp.cmp(one, other, shallow=False)


def import_files(
    channel,
    paths,
    uploader=None,
    *,
    batch_size=500,
    workers=None,
    progress=None,
    source="",
    refused=None,
    yanked=None,
    file_labels=None,
):
    """Import package files into ``channel``; return an :class:`ImportResult`.

    ``paths`` holds paths, or ``(path, subdir)`` pairs for files that must be packages of
    that subdir (the folder they were found in). ``refused`` (``{path: reason}``) are files
    refused before, reported and recorded with the rest. ``progress(checked, result)`` is
    called as files are checked and batches stored. ``source`` (the directory) goes into
    the audit events. ``yanked`` (``{(subdir, filename): reason}``, see :func:`yanked_in`)
    names files to import as yanked, ``file_labels`` (``{(subdir, filename): labels}``) the
    labels of files (``main`` for the others); files already in the channel keep their
    state and labels. See :func:`read_channel_directory` for both.
    Raises :class:`ImportBusy` when another import into the channel is running.
    """
    items = [_item(p) for p in paths]
    result = ImportResult(total=len(items), refused=dict(refused or {}))
    with exclusive(channel):
        result.cleared = clear_staged(channel)
        workers = workers or os.cpu_count() or 1
        # Starting processes costs more than checking a handful of files.
        pool = ProcessPoolExecutor(workers) if len(items) > 4 * workers else None
        try:
            for start in range(0, len(items), batch_size):
                batch = items[start : start + batch_size]
                if pool is None:
                    inspected = map(_inspect, batch)
                else:
                    inspected = pool.map(_inspect, batch, chunksize=max(1, batch_size // workers))
                checked = []
                for item in inspected:
                    checked.append(item)
                    if progress:
                        progress(start + len(checked), result)
                found = (yanked or {}, file_labels or {})
                _import_batch(channel, checked, uploader, result, source, found)
                if progress:
                    progress(start + len(checked), result)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        audit.record(
            "channel.imported",
            actor=uploader,
            channel=channel,
            source=source,
            imported=result.imported,
            skipped=result.skipped,
            refused=len(result.refused),
            bytes=result.imported_bytes,
        )
        rebuild_behind(channel)
    return result


def _item(path):
    if isinstance(path, str | os.PathLike):
        return str(path), None
    return str(path[0]), path[1]


def _inspect(item):
    """Runs in a worker process: hash and check one file; return (file, metadata, problem)."""
    path, folder = item
    try:
        received = uploads.ReceivedFile.from_path(path)
    except OSError as exc:
        unread = uploads.ReceivedFile(path, os.path.basename(path), 0, "", "", temporary=False)
        return unread, None, f"The file could not be read ({exc.strerror or exc})."
    try:
        uploads.check_size(received)
        metadata = archives.inspect_package(received.path, received.filename)
    except uploads.UploadError as exc:
        return received, None, exc.message
    except archives.InvalidPackage as exc:
        return received, None, str(exc)
    if folder is not None and metadata.subdir != folder:
        problem = (
            f"info/index.json says subdir '{metadata.subdir}' but the file is in the folder "
            f"'{folder}/'; move it to '{metadata.subdir}/'."
        )
        return received, None, problem
    return received, metadata, None


def store_inspected(channel, inspected, uploader, result, source):
    """Store files that were checked already — ``(received file, metadata, problem)``
    each, as an import's inspection gives them — into ``channel``, in one batch, adding
    to ``result``; for a caller that holds :func:`exclusive` (a mirror run). The index is
    not rebuilt: call :func:`rebuild_behind`."""
    _import_batch(channel, inspected, uploader, result, source, ({}, {}))


def _import_batch(channel, inspected, uploader, result, source, found):
    for attempt in range(3):
        batch = ImportResult()
        try:
            _store_batch(channel, inspected, uploader, batch, source, found)
        except IntegrityError:
            # A file of the same name was uploaded meanwhile: check the batch again.
            if attempt == 2:
                raise
            continue
        result.imported += batch.imported
        result.skipped += batch.skipped
        result.imported_bytes += batch.imported_bytes
        result.refused.update(batch.refused)
        return


def _store_batch(channel, inspected, uploader, result, source, found):
    accepted = []
    for received, metadata, problem in inspected:
        if problem:
            result.refused[received.path] = problem
        else:
            accepted.append((received, metadata))
    fresh = _within_quota(channel, _fresh(channel, accepted, result), result)
    if not fresh:
        return
    planned = [
        uploads.new_storage_path(channel, metadata.subdir, received.filename)
        for received, metadata in fresh
    ]
    # Recorded before any byte is written: if this process dies, a sweep deletes what it
    # stored without committing; what is not committed is deleted when the block ends.
    with staging.stage(channel, planned, kind="import") as staged:
        for (received, metadata), path in zip(fresh, planned, strict=True):
            uploads.store_bytes(channel, metadata.subdir, received, path)
        over = _commit(channel, fresh, planned, uploader, source, found, staged)
    for received, _ in fresh:
        if received.path in over:
            result.refused[received.path] = over[received.path][1]
        else:
            result.imported += 1
            result.imported_bytes += received.size


def _fresh(channel, accepted, result):
    """The accepted files that are not in the channel yet; the others as the re-upload
    rule says: the same bytes are skipped, other bytes under a name already taken are
    refused (an import replaces nothing)."""
    rows = PackageFile.objects.filter(
        channel=channel, filename__in=[r.filename for r, _ in accepted]
    ).values_list("subdir", "filename", "sha256")
    stored = {(subdir, filename): sha256 for subdir, filename, sha256 in rows}
    fresh = []
    for received, metadata in accepted:
        key = (metadata.subdir, received.filename)
        try:
            outcome = reuploads.judge(
                channel, *key, received.sha256, stored.get(key),
                how_to_replace=reuploads.BY_DELETING,
            )  # fmt: skip
        except reuploads.Conflict as exc:
            result.refused[received.path] = exc.message
            continue
        if outcome is reuploads.Outcome.NEW:
            stored[key] = received.sha256  # the same file twice in one batch counts once
            fresh.append((received, metadata))
        else:
            result.skipped += 1
    return fresh


def _fit(channel, quota, files):
    """Split ``files`` into those within the quota and ``{path: reason}`` for the rest."""
    if quota is None:
        return files, {}
    used = PackageFile.objects.filter(channel=channel).aggregate(total=Sum("size"))["total"] or 0
    kept, refused = [], {}
    for received, metadata in files:
        if used + received.size > quota:
            refused[received.path] = uploads.over_quota(channel, quota, used, received.size).message
        else:
            used += received.size
            kept.append((received, metadata))
    return kept, refused


def _within_quota(channel, fresh, result):
    """Before copying bytes that would be refused (checked again when committing)."""
    kept, refused = _fit(channel, uploads.quota_of(channel), fresh)
    result.refused.update(refused)
    return kept


def _commit(channel, fresh, planned, uploader, source, found, staged):
    """Record the stored files in one change; return ``{path: (storage path, reason)}``
    for those that no longer fit the quota (another upload took the room meanwhile).
    ``found`` holds the reasons of files to yank and the labels of files, by (subdir,
    filename). The rebuilds are requested, not started: :func:`import_files` starts them
    once at its end."""
    yanked, file_labels = found
    with file_change(actor=uploader, enqueue=False) as change:
        kept, refused = _fit(channel, uploads.quota_of(channel, change=change), fresh)
        stored_at = dict(zip([r.path for r, _ in fresh], planned, strict=True))
        rows, carried = [], []
        now = timezone.now()
        for received, metadata in kept:
            path = stored_at[received.path]
            fields = uploads.package_file_fields(received, metadata, path, uploader)
            reason = yanked.get((metadata.subdir, received.filename))
            if reason:
                fields.update(yanked_at=now, yank_reason=reason)
            rows.append(
                PackageFile(
                    channel=channel, subdir=metadata.subdir, filename=received.filename, **fields
                )
            )
            change.audit(
                "package.imported",
                channel,
                subdir=metadata.subdir,
                filename=received.filename,
                sha256=received.sha256,
                source=source,
            )
            # main, as uploads by default, unless the directory had it under other labels
            file_label_names = file_labels.get((metadata.subdir, received.filename), [MAIN_LABEL])
            carried.append(file_label_names)
            change.touch(channel, metadata.subdir, [metadata.name], file_label_names)
        PackageFile.objects.bulk_create(rows, batch_size=1000)
        labels.attach_each(rows, carried)
        staged.commit([row.storage_path for row in rows])
    return {path: (stored_at[path], reason) for path, reason in refused.items()}


def clear_staged(channel):
    """Delete what killed imports and uploads stored in ``channel`` without committing;
    return how many objects (packages_app/staging.py).

    Call while holding :func:`exclusive`: then no import into the channel is alive, and
    what imports staged there goes even if its lease has not lapsed yet.
    """
    return staging.sweep(channel, dead="import")


@contextlib.contextmanager
def exclusive(channel):
    """Hold the channel's import lock; raise :class:`ImportBusy` if another import has it.

    The lock belongs to the database session (PostgreSQL) or to an open file next to the
    database (SQLite), so it is let go however the process ends, SIGKILL included.
    """
    busy = ImportBusy(f"Another import into channel '{channel.name}' is running.")
    if connection.vendor == "postgresql":
        key = f"wharf-import:{channel.pk}"
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [key])
            if not cursor.fetchone()[0]:
                raise busy
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [key])
        return
    database = Path(str(connection.settings_dict["NAME"]))
    if not database.is_file():  # an in-memory database: no other process can see it
        yield
        return
    with open(f"{database}.import-{channel.pk}.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        yield


def rebuild_behind(channel):
    """Rebuild every subdir of the channel whose index is behind its files, once.

    This includes subdirs that an interrupted import committed files to and never got
    to rebuild. With workers, they do it; in embedded mode it is done here, .bz2 included.
    """
    behind = SubdirIndex.objects.filter(
        channel=channel, built_revision__lt=F("requested_revision")
    ).values_list("subdir", "label")
    for subdir, label in behind.order_by("label", "subdir"):
        runner.send(rebuilds.rebuild_now, channel.pk, subdir, label)
