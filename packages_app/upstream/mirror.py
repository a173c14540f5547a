"""Mirror channels: a copy of an upstream channel, made by runs, kept like uploads.

A run (:func:`sync`) reads the upstream's repodata.json of every subdir it mirrors (the
channel's ``platforms``, or every subdir the upstream has), keeps the records its
filters select (:mod:`.selection`), and copies each selected file that the channel does
not hold yet: downloaded to a temporary file, checked against the sha256 and size the
upstream's repodata gives, then checked and stored exactly as an import stores files
(:mod:`packages_app.intake.importing`) — the package's own ``info/index.json`` is what
Wharf indexes, not the upstream's record. With ``remove_missing``, files the upstream no
longer has (or the filters no longer select) are deleted. Nothing a client asks for
waits on the upstream: a mirror serves what it holds, as a hosted channel does.

A run holds the channel's import lock (one import or run per channel at a time, let go
however its process ends) and commits files in batches; the index is republished while
a long run goes on. A run that is killed leaves its row ``running``: the next run, or the
reconciler, marks it ``interrupted``, and the next run copies what is still missing —
the files the killed one committed are skipped, the bytes it stored without committing
are deleted (:func:`~packages_app.intake.importing.clear_staged`).
"""

import hashlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import ijson
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts import audit
from accounts.errors import DomainError
from channels_app.models import Kind, Upstream
from packages_app import runner
from packages_app.files.deleting import delete_package_file
from packages_app.intake import archives, digests, importing, uploads
from packages_app.models import MirrorRun, PackageFile
from registry import metrics

from . import client
from .documents import Document
from .selection import Selection

log = logging.getLogger(__name__)
REPUBLISH_SECONDS = 30  # a long run publishes what it copied at least this often
RECORD_FIELDS = ("name", "version", "build", "build_number", "subdir", "sha256", "md5", "size")


class MirrorBusy(DomainError):
    """A run (or an import) into the channel is going on."""

    status = 409


@dataclass
class Wanted:
    """A file the upstream has and the filters select."""

    subdir: str
    filename: str
    record: dict
    base_url: str


def sync(channel, *, trigger=MirrorRun.Trigger.COMMAND, user=None, progress=None, full=False):
    """Run a mirror channel's copy of its upstream; return the finished :class:`MirrorRun`
    (None for a scheduled run that another made unnecessary meanwhile).

    ``progress(run)`` is called as the run goes (files planned, added, failed). A subdir
    whose upstream index has not changed since the last run copied all of it (same
    validators, same filters) is not read again, unless ``full``.
    Raises :class:`MirrorBusy` when a run or an import into the channel is going on.
    """
    if channel.kind != Kind.MIRROR:
        raise MirrorBusy(f"Channel '{channel.name}' is not a mirror channel.")
    try:
        with importing.exclusive(channel):
            interrupt_dead_runs(channel)
            if trigger == MirrorRun.Trigger.SCHEDULE and not _due(channel.upstream):
                return None
            run = MirrorRun.objects.create(channel=channel, trigger=trigger, started_by=user)
            previous = {} if full else _previous_validators(channel, run)
            _run(channel, channel.upstream, run, progress or (lambda run: None), previous)
    except importing.ImportBusy:
        raise MirrorBusy(
            f"A mirror run or an import into channel '{channel.name}' is going on."
        ) from None
    return run


def _due(upstream, last=None):
    """Whether the channel's next scheduled run is due: never run, the last one was
    interrupted, or it started ``refresh_seconds`` ago."""
    last = last or MirrorRun.objects.filter(channel_id=upstream.channel_id).first()
    if last is None or last.state == MirrorRun.State.INTERRUPTED:
        return True
    if last.state == MirrorRun.State.RUNNING:
        return False
    return (timezone.now() - last.started_at).total_seconds() >= upstream.refresh_seconds


def interrupt_dead_runs(channel):
    """Mark the channel's runs still ``running`` as interrupted: call holding the lock a
    run holds, so that none of them is alive."""
    return MirrorRun.objects.filter(channel=channel, state=MirrorRun.State.RUNNING).update(
        state=MirrorRun.State.INTERRUPTED,
        finished_at=timezone.now(),
        error="Its process ended before the run finished; the next run goes on from here.",
    )


def _previous_validators(channel, run):
    """The validators the channel's last ended run recorded, per subdir."""
    last = MirrorRun.objects.filter(channel=channel).exclude(pk=run.pk).first()
    return dict(last.validators) if last is not None else {}


def _filters(upstream):
    """A digest of what decides the selection: a change makes every subdir read again."""
    chosen = [upstream.include, upstream.exclude, upstream.keep_versions, upstream.remove_missing]
    return hashlib.sha256(json.dumps(chosen).encode()).hexdigest()[:16]


def _run(channel, upstream, run, progress, previous):
    selection = Selection(upstream.include, upstream.exclude, upstream.keep_versions)
    filters = _filters(upstream)
    importing.clear_staged(channel)
    try:
        for subdir, explicit in _subdirs(upstream):
            known = previous.get(subdir, {})
            known = known if known.get("filters") == filters else {}
            failed_before = run.failed
            try:
                wanted, validators = _read_subdir(upstream, subdir, selection, explicit, run, known)
            except (client.UpstreamError, OSError, ValueError, ijson.JSONError) as exc:
                _fail(run, subdir, f"repodata.json could not be read: {exc}")
                continue
            if wanted is not None:
                _remove_missing(channel, upstream, subdir, wanted, run)
                _copy(channel, upstream, wanted, run, progress)
            if validators and run.failed == failed_before:
                run.validators[subdir] = {**validators, "filters": filters}
        run.state = MirrorRun.State.FAILED if run.failures else MirrorRun.State.FINISHED
    except BaseException as exc:
        run.state = MirrorRun.State.FAILED
        run.error = f"{exc.__class__.__name__}: {exc}"
        raise
    finally:
        run.finished_at = timezone.now()
        run.save()
        _record_outcome(channel, upstream, run)
        importing.rebuild_behind(channel)


def _subdirs(upstream):
    """(subdir, whether the channel names it) for each subdir to read: the channel's
    platforms, or every known subdir (those the upstream does not have answer 404 and
    are passed over)."""
    if upstream.platforms:
        return [(subdir, True) for subdir in upstream.platforms]
    return [(subdir, False) for subdir in sorted(archives.SUBDIRS)]


def _read_subdir(upstream, subdir, selection, explicit, run, known):
    """The files of ``subdir`` to hold ({filename: Wanted}), or None when the upstream
    has no such subdir or it did not change since ``known`` (the validators of the last
    complete copy); and the validators of what was read."""
    headers = {"Accept-Encoding": "gzip"}
    if known.get("etag"):
        headers["If-None-Match"] = known["etag"]
    if known.get("last_modified"):
        headers["If-Modified-Since"] = known["last_modified"]
    response = client.get(upstream, f"{subdir}/repodata.json", headers, stream=True)
    if response.status == 304:
        response.release_conn()
        run.unchanged.append(subdir)
        return None, {k: v for k, v in known.items() if k != "filters"}
    if response.status == 404:
        response.release_conn()
        if explicit:
            _fail(run, subdir, f"The upstream has no {subdir}/repodata.json.")
        return None, None
    if response.status != 200:
        response.release_conn()
        raise client.UpstreamError(f"HTTP {response.status}", status=response.status)
    validators = {
        "etag": response.headers.get("ETag", ""),
        "last_modified": response.headers.get("Last-Modified", ""),
    }
    with Document(response) as document:
        base_url = str(document.info().get("base_url") or "")
        chosen = {
            filename: {key: record[key] for key in RECORD_FIELDS if key in record}
            for filename, record in document.records()
            if selection.wants(record)
        }
    chosen = selection.newest(chosen)
    run.subdirs.append(subdir)
    run.selected += len(chosen)
    wanted = {name: Wanted(subdir, name, record, base_url) for name, record in chosen.items()}
    return wanted, validators


def _remove_missing(channel, upstream, subdir, wanted, run):
    """Delete the files the upstream no longer has (or the filters no longer select)
    when the channel says so; set aside the selected files already held."""
    held = PackageFile.objects.filter(channel=channel, subdir=subdir)
    gone = []
    for filename, sha256 in held.values_list("filename", "sha256").iterator(chunk_size=5000):
        found = wanted.pop(filename, None)
        if found is None:
            gone.append(filename)
        elif found.record.get("sha256") and found.record["sha256"] != sha256:
            _fail(run, f"{subdir}/{filename}", _CHANGED)
    if upstream.remove_missing and gone:
        for package_file in held.filter(filename__in=gone).select_related("channel"):
            delete_package_file(package_file)
            run.removed += 1
    run.to_copy += len(wanted)
    run.save()


_CHANGED = (
    "The upstream now has other bytes under this name than the copy here; the copy is "
    "kept (delete it to copy the upstream's)."
)


def _copy(channel, upstream, wanted, run, progress):
    """Download, check and store the ``wanted`` files, a batch at a time."""
    files = sorted(wanted.values(), key=lambda w: w.filename)
    last_publish = time.monotonic()
    progress(run)
    threads = max(1, settings.WHARF_MIRROR_DOWNLOADS)
    with ThreadPoolExecutor(threads, thread_name_prefix="wharf-mirror") as pool:
        step = max(1, settings.WHARF_MIRROR_BATCH)
        for start in range(0, len(files), step):
            batch = files[start : start + step]
            fetched = list(pool.map(lambda w: _fetch(upstream, w), batch))
            _store(channel, upstream, fetched, run)
            run.save()
            progress(run)
            if time.monotonic() - last_publish > REPUBLISH_SECONDS:
                importing.rebuild_behind(channel)
                last_publish = time.monotonic()


def _fetch(upstream, wanted):
    """(received file, its metadata, None) or (None, None, why it was not copied)."""
    path = _file_path(wanted)
    record = wanted.record
    declared = digests.given("sha256", record.get("sha256"), "the upstream's repodata")
    if not declared:
        declared = digests.given("md5", record.get("md5"), "the upstream's repodata")
    try:
        response = client.get(upstream, path, stream=True)
    except client.UpstreamError as exc:
        return wanted, None, None, str(exc)
    try:
        if response.status != 200:
            return wanted, None, None, f"The upstream answered HTTP {response.status}."
        received = uploads.receive_raw(response, wanted.filename, declared)
    except (uploads.UploadError, digests.DigestMismatch) as exc:
        return wanted, None, None, f"{exc.message} Nothing was kept."
    except Exception as exc:  # noqa: BLE001 - the connection broke off: retried next run
        return wanted, None, None, f"The download broke off: {exc}"
    finally:
        response.release_conn()
    size = record.get("size")
    if isinstance(size, int) and size != received.size:
        received.discard()
        return (
            wanted,
            None,
            None,
            (
                f"The upstream sent {received.size} bytes; its repodata says {size}. "
                "Nothing was kept."
            ),
        )
    try:
        metadata = archives.inspect_package(received.path, received.filename)
    except archives.InvalidPackage as exc:
        received.discard()
        return wanted, None, None, str(exc)
    if metadata.subdir != wanted.subdir:
        received.discard()
        return (
            wanted,
            None,
            None,
            (
                f"info/index.json says subdir '{metadata.subdir}', the upstream lists it in "
                f"'{wanted.subdir}'."
            ),
        )
    return wanted, received, metadata, None


def _file_path(wanted):
    if wanted.base_url:
        return f"{wanted.base_url.rstrip('/')}/{wanted.filename}"
    return f"{wanted.subdir}/{wanted.filename}"


def _store(channel, upstream, fetched, run):
    inspected = []
    for wanted, received, metadata, problem in fetched:
        if problem:
            _fail(run, f"{wanted.subdir}/{wanted.filename}", problem)
        else:
            inspected.append((received, metadata, None))
    if not inspected:
        return
    result = importing.ImportResult()
    try:
        importing.store_inspected(channel, inspected, None, result, upstream.url)
    finally:
        for received, _, _ in inspected:
            received.discard()
    run.added += result.imported
    run.added_bytes += result.imported_bytes
    for received, _, _ in inspected:
        if received.path in result.refused:
            _fail(run, received.filename, result.refused[received.path])


def _fail(run, what, reason):
    run.failed += 1
    if len(run.failures) < MirrorRun.MAX_FAILURES:
        run.failures[what] = reason
    log.warning("mirror run %s: %s: %s", run.pk, what, reason)


def _record_outcome(channel, upstream, run):
    now = timezone.now()
    if run.state == MirrorRun.State.FINISHED:
        Upstream.objects.filter(pk=upstream.pk).update(last_refresh=now, last_error="")
    else:
        metrics.UPSTREAM_FAILURES.inc()
        first = run.error or next(iter(run.failures.items()), ("", ""))
        message = first if isinstance(first, str) else f"{first[0]}: {first[1]}"
        Upstream.objects.filter(pk=upstream.pk).update(
            last_refresh=F("last_refresh") if run.added == 0 else now,
            last_error=f"{run.failed} files or subdirs not copied; {message}"[:2000],
            last_error_at=now,
        )
    audit.record(
        "channel.mirrored",
        actor=run.started_by,
        channel=channel,
        source=upstream.url,
        run=run.pk,
        state=run.state,
        added=run.added,
        removed=run.removed,
        failed=run.failed,
    )


def due_mirrors():
    """Start a run of each mirror channel whose last run started ``refresh_seconds`` ago
    or more, or was interrupted (a killed run is resumed within a round of this); return
    how many were sent. Periodic work (Celery beat, or after other work in embedded mode).
    """
    sent = 0
    mirrors = Upstream.objects.filter(channel__kind=Kind.MIRROR).select_related("channel")
    for upstream in mirrors:
        channel = upstream.channel
        last = MirrorRun.objects.filter(channel=channel).first()
        if last is not None and last.state == MirrorRun.State.RUNNING:
            if not _interrupt_if_dead(channel):
                continue  # alive
            last.state = MirrorRun.State.INTERRUPTED
        if _due(upstream, last):
            sent += runner.send(run_scheduled, channel.pk, detached=True)
    return sent


def _interrupt_if_dead(channel):
    """Whether no run of ``channel`` is alive (its ``running`` rows are marked so)."""
    try:
        with importing.exclusive(channel):
            interrupt_dead_runs(channel)
    except importing.ImportBusy:
        return False
    return True


def start(channel, user):
    """Start a run of ``channel`` in the background now (``POST …/mirror-runs/``); raise
    :class:`MirrorBusy` when one is going on."""
    last = MirrorRun.objects.filter(channel=channel).first()
    if (
        last is not None
        and last.state == MirrorRun.State.RUNNING
        and not _interrupt_if_dead(channel)
    ):
        raise MirrorBusy(f"Run {last.pk} of channel '{channel.name}' is going on.")
    return runner.send(run_in_background, channel.pk, MirrorRun.Trigger.API, user.pk, detached=True)


def first_run(channel):
    """A new mirror channel's first run, started once its creation commits."""
    if channel.kind == Kind.MIRROR:
        transaction.on_commit(
            lambda: runner.send(run_scheduled, channel.pk, detached=True), robust=True
        )


def run_scheduled(channel_id):
    """A scheduled run (sent by :func:`due_mirrors`)."""
    return run_in_background(channel_id, MirrorRun.Trigger.SCHEDULE)


def run_in_background(channel_id, trigger, user_id=None):
    """A run sent to the background; nothing when one is going on already."""
    from django.contrib.auth import get_user_model

    from channels_app.models import Channel

    channel = Channel.objects.select_related("upstream").filter(pk=channel_id).first()
    if channel is None or channel.kind != Kind.MIRROR:
        return None
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    try:
        run = sync(channel, trigger=trigger, user=user)
    except MirrorBusy:
        return None
    return run.pk if run else None
