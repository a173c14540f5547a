"""Keeping each (channel, label, subdir) index in step with its package files.

Each label of a channel has indexes of its own, built from the files that carry the label
(``main``: the channel's own URL; any other, ``/<channel>/label/<label>/``). Everything
below is per index, and so per label.

A change to a subdir calls :func:`request_rebuild` inside its transaction: it raises the
subdir's requested revision and marks the changed package names. After commit a Celery
task runs :func:`rebuild_until_current`. Rebuilds of one subdir never overlap (a lease on
its :class:`SubdirIndex` row) and coalesce: a rebuild publishes everything committed so
far, so a burst of uploads causes a few rebuilds, not one each.

A rebuild is incremental. Each process keeps the records of recently built subdirs in
memory (:class:`repodata.RecordSet`) and reloads from the database only the names that
changed since; only the shards of changed names are written. Archives are never re-read.

Publishing is atomic: the new files are written to a fresh storage folder first, then one
row update switches what is served. Shards are named by their hash and never change.
Work whose task was lost (broker down, worker killed) is found in the database and sent
again by the reconciler (:mod:`.reconcile`).
"""

import contextlib
import hashlib
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from channels_app.models import Channel
from registry import metrics

from . import repodata, storage
from .models import MAIN_LABEL, PackageFile, SubdirIndex, SubdirPackage

log = logging.getLogger(__name__)
LIVE_STATES = (PackageFile.State.PENDING, PackageFile.State.INDEXED)
# Beyond this many changed names a rebuild reloads the whole subdir in one query.
FULL_RELOAD_NAMES = 2000
# A .bz2 folder younger than this may still be being written: garbage collection waits.
BZ2_GRACE_SECONDS = 600
# A .bz2 refresh this long past its due time was lost (its task never reached a worker, or
# the worker died): it may be scheduled, and is sent again by the reconciler.
BZ2_LOST_AFTER = timedelta(minutes=10)


# SubdirPackage.shard_sha256 of a name whose files are all gone: it has no shard.
NO_FILES = "-"


def index_folder(channel_id, subdir, label=MAIN_LABEL):
    """Where the index files of one (channel, label, subdir) are stored.

    ``main`` keeps the folder it had before labels existed; other labels sit beside the
    subdirs, under ``label/`` (never a subdir's name).
    """
    if label == MAIN_LABEL:
        return f"index/{channel_id}/{subdir}"
    return f"index/{channel_id}/label/{label}/{subdir}"


def shard_path(channel_id, subdir, digest_hex, label=MAIN_LABEL):
    return f"{index_folder(channel_id, subdir, label)}/shards/{digest_hex}.msgpack.zst"


# -- requesting ------------------------------------------------------------------------


def request_rebuild(channel, subdir, names=(), *, label=MAIN_LABEL, full=False, enqueue=True):
    """Record that ``names`` changed in the ``label`` index of ``subdir``; call inside the
    changing transaction.

    ``full`` marks every name, so that the next rebuild starts from scratch. Without
    ``enqueue`` no rebuild is started (a bulk import starts one at its end). Returns the
    new requested revision. A label's first index brings the label's noarch index along:
    clients read noarch wherever they read another subdir.
    """
    index, created = SubdirIndex.objects.get_or_create(channel=channel, label=label, subdir=subdir)
    if created and subdir != "noarch":
        noarch = SubdirIndex.objects.filter(channel=channel, label=label, subdir="noarch")
        if not noarch.exists():
            request_rebuild(channel, "noarch", label=label, enqueue=enqueue)
    SubdirIndex.objects.filter(pk=index.pk).update(requested_revision=F("requested_revision") + 1)
    index.refresh_from_db(fields=["requested_revision"])
    revision = index.requested_revision
    if full:
        names = set(names) | set(
            PackageFile.objects.filter(channel=channel, subdir=subdir, labels__label=label)
            .values_list("name", flat=True)
            .distinct()
        )
        # The digests stay: a rebuild of an earlier revision that runs meanwhile publishes
        # a shard index with them, and each of those shards still exists.
        SubdirPackage.objects.filter(index=index).update(changed_revision=revision)
    if names:
        SubdirPackage.objects.bulk_create(
            [SubdirPackage(index=index, name=name, changed_revision=revision) for name in names],
            update_conflicts=True,
            unique_fields=["index", "name"],
            update_fields=["changed_revision"],
        )
    if enqueue:
        enqueue_rebuild(channel.pk, subdir, label)
    return revision


def request_rebuilds(channel, subdir, names, labels, *, full=False):
    """:func:`request_rebuild` of each of ``labels`` (a file's, when it changed)."""
    for label in sorted(set(labels)):  # one order, so two changes never lock crosswise
        request_rebuild(channel, subdir, names, label=label, full=full)


def request_full_rebuilds(channel, subdir):
    """Rebuild from scratch every label index of ``subdir``; returns main's revision."""
    labels = set(
        SubdirIndex.objects.filter(channel=channel, subdir=subdir).values_list("label", flat=True)
    )
    revisions = {}
    for label in sorted(labels | {MAIN_LABEL}):
        revisions[label] = request_rebuild(channel, subdir, label=label, full=True)
    return revisions[MAIN_LABEL]


def enqueue_rebuild(channel_id, subdir, label=MAIN_LABEL):
    """Start a rebuild once the current transaction commits.

    A broker that cannot be reached does not fail the change: it is committed with its
    revision, so the reconciler (:mod:`.reconcile`) sends the rebuild later.
    """
    from . import reconcile
    from .tasks import rebuild_subdir_index

    def enqueue():
        send(rebuild_subdir_index, channel_id, subdir, label)
        if rebuild_subdir_index.app.conf.task_always_eager:
            reconcile.now_and_then()

    transaction.on_commit(enqueue)


def send(task, *args, countdown=None):
    """Send ``task`` to the workers (embedded mode: run it here); False when that failed.

    Failures are logged, never raised. Everything a task does is recorded in the database
    before it is sent (a requested revision, a .bz2 due time), so a task lost to a broker
    outage is found there and sent again by the reconciler.
    """
    try:
        task.apply_async(args, countdown=countdown)
    except Exception:
        log.exception("could not send %s%s", task.name, args)
        return False
    return True


# -- rebuilding ------------------------------------------------------------------------


def _take_lease(index_id, owner):
    now = timezone.now()
    return (
        SubdirIndex.objects.filter(pk=index_id)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now) | Q(lease_owner=owner))
        .update(
            lease_until=now + timedelta(seconds=settings.WHARF_INDEX_LEASE_SECONDS),
            lease_owner=owner,
        )
        == 1
    )


def _release_lease(index_id, owner):
    SubdirIndex.objects.filter(pk=index_id, lease_owner=owner).update(
        lease_until=None, lease_owner=""
    )


def rebuild_until_current(channel_id, subdir, owner=None, label=MAIN_LABEL):
    """Publish the subdir's ``label`` index until it reflects every committed change.

    Safe to call any number of times, from any number of workers: a caller that finds
    the lease taken returns at once, because the holder re-reads the requested revision
    after each round and again after letting the lease go. ``owner`` names the holder
    (a task passes its id, so that its retry, or its redelivery after its worker died,
    takes the lease back at once instead of waiting for it to expire).
    Returns the number of rebuilds this call performed.
    """
    index = SubdirIndex.objects.filter(channel_id=channel_id, label=label, subdir=subdir).first()
    if index is None:
        return 0
    owner = owner or str(uuid.uuid4())
    rebuilds = 0
    while not index.is_current:
        if not _take_lease(index.pk, owner):
            return rebuilds
        try:
            while True:
                index.refresh_from_db()
                if index.is_current:
                    break
                if publish(index, index.requested_revision, owner=owner) is None:
                    return rebuilds  # the lease expired and another worker took over
                rebuilds += 1
                if not _take_lease(index.pk, owner):  # renew between rounds
                    return rebuilds
        finally:
            _release_lease(index.pk, owner)
        index.refresh_from_db()
    return rebuilds


class _RecordSetCache:
    """Recently built subdirs' records, per process, bounded by their size in bytes."""

    def __init__(self):
        self._entries = OrderedDict()  # index pk -> (revision, RecordSet)
        self._lock = threading.Lock()

    def take(self, index_pk):
        """Remove and return ``(revision, records)``, or ``(-1, None)``.

        Taken out while in use, so that a failed rebuild can never leave a half-updated
        set behind.
        """
        with self._lock:
            return self._entries.pop(index_pk, (-1, None))

    def put(self, index_pk, revision, records):
        limit = settings.WHARF_INDEX_CACHE_BYTES
        with self._lock:
            self._entries[index_pk] = (revision, records)
            while self._entries and sum(r.size for _, r in self._entries.values()) > limit:
                self._entries.popitem(last=False)

    def clear(self):
        with self._lock:
            self._entries.clear()


record_sets = _RecordSetCache()


def _chunks(items, size):
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _load(index, records, names):
    """Refresh ``records`` for ``names`` (None: everything) from the files that carry the
    index's label; return pending file ids."""
    live = PackageFile.objects.filter(
        channel_id=index.channel_id,
        subdir=index.subdir,
        state__in=LIVE_STATES,
        labels__label=index.label,
    )
    fields = ("pk", "filename", "name", "record_json", "yanked_at", "state")
    pending = []

    def rows(queryset):
        for pk, filename, name, record_json, yanked_at, state in queryset:
            if state == PackageFile.State.PENDING:
                pending.append(pk)
            yield filename, name, record_json, yanked_at

    if names is None:
        all_rows = live.values_list(*fields).iterator(chunk_size=5000)
        records.replace_names(list(records.names), rows(all_rows))
    else:
        for chunk in _chunks(names, 500):
            records.replace_names(chunk, rows(live.filter(name__in=chunk).values_list(*fields)))
    return pending


def publish(index, revision, owner=None):
    """Build and publish the subdir's index files as of ``revision``.

    Returns timings: ``seconds`` until repodata.json, .zst and the shard index are
    served. repodata.json.bz2 follows in a task of its own (:func:`refresh_bz2`).
    With ``owner``, the switch happens only while ``owner`` holds the lease: a worker
    whose lease expired mid-build (it stalled, and another took over) publishes nothing,
    deletes what it wrote and returns None.
    """
    started = time.perf_counter()
    cached_revision, records = record_sets.take(index.pk)
    packages = SubdirPackage.objects.filter(index=index)
    changed = list(packages.filter(changed_revision__gt=cached_revision).values_list("name"))
    if records is None or len(changed) > FULL_RELOAD_NAMES:
        records = repodata.RecordSet(index.subdir)
        pending = _load(index, records, None)
    else:
        pending = _load(index, records, [name for (name,) in changed])

    digests = _write_changed_shards(index, records, revision)

    raw = records.repodata_json()
    base = index_folder(index.channel_id, index.subdir, index.label)
    folder = f"{base}/r{revision}-{uuid.uuid4().hex[:8]}"
    published = {
        repodata.REPODATA: _save(folder, repodata.REPODATA, raw),
        repodata.REPODATA_ZST: _save(folder, repodata.REPODATA_ZST, repodata.zstd_compress(raw)),
        repodata.SHARD_INDEX: _save(
            folder, repodata.SHARD_INDEX, repodata.shard_index(index.subdir, digests)
        ),
    }
    previous_bz2 = index.published_files.get(repodata.REPODATA_BZ2)
    if previous_bz2:
        published[repodata.REPODATA_BZ2] = previous_bz2

    pause = settings.WHARF_TEST_PUBLISH_PAUSE_SECONDS
    if pause:
        time.sleep(pause)  # tests only: a moment to kill a worker between write and switch

    now = timezone.now()
    switch = SubdirIndex.objects.filter(pk=index.pk)
    if owner is not None:
        switch = switch.filter(lease_owner=owner)
    with transaction.atomic():
        # Package file rows first, then the index row: the order in which an upload, a
        # replacement or a delete locks them. The other order deadlocks with a delete.
        PackageFile.objects.filter(pk__in=pending, state=PackageFile.State.PENDING).update(
            state=PackageFile.State.INDEXED, indexed_at=now
        )
        switched = switch.update(
            published_path=folder,
            previous_path=index.published_path,
            published_files=published,
            published_at=now,
            built_revision=revision,
            rebuild_count=F("rebuild_count") + 1,
        )
        if not switched:
            transaction.set_rollback(True)
    if not switched:
        if _forget_if_deleted(index):
            return None
        log.warning(
            "lost the lease of %s/%s (label %s) before publishing revision %s; not published",
            index.channel_id, index.subdir, index.label, revision,
        )  # fmt: skip
        delete_tree(folder)
        return None
    record_sets.put(index.pk, revision, records)
    seconds = time.perf_counter() - started
    metrics.INDEX_REBUILD_SECONDS.observe(seconds)
    channel = Channel.objects.filter(pk=index.channel_id).values_list("name", flat=True).first()
    log.info(
        "published %s/%s%s revision %s: %d records, %d pending indexed, %.3f s",
        channel, "" if index.label == MAIN_LABEL else f"label/{index.label}/", index.subdir,
        revision, len(records), len(pending), seconds,
        extra={
            "channel": channel, "channel_id": index.channel_id, "subdir": index.subdir,
            "label": index.label,
            "revision": revision, "records": len(records), "duration_ms": round(seconds * 1000, 1),
        },
    )  # fmt: skip

    _collect_garbage(index)
    transaction.on_commit(lambda: _schedule_bz2(index))
    return {"records": len(records), "seconds": seconds}


def _write_changed_shards(index, records, revision):
    """Write the shards of names changed since the last build; return every digest.

    Only names changed up to ``revision`` are certain to be complete in ``records``; a
    name changed later is left for the next round (taking it as empty would drop it).
    """
    packages = SubdirPackage.objects.filter(index=index)
    stale = (
        packages.filter(Q(changed_revision__gt=index.built_revision) | Q(shard_sha256=""))
        .filter(changed_revision__lte=revision)
        .values_list("pk", "name", "changed_revision")
    )
    updated, emptied = [], []
    compressor = repodata.shard_compressor()
    for pk, name, changed_revision in stale.iterator(chunk_size=2000):
        name_records = records.records_of(name)
        removed = records.removed_of(name)
        if not name_records and not removed:
            emptied.append((name, changed_revision))
            continue
        data = repodata.shard(name_records, compressor, removed)
        digest = repodata.shard_digest(data)
        path = shard_path(index.channel_id, index.subdir, digest, index.label)
        if not _stored_whole(path, len(data)):
            default_storage.save(path, ContentFile(data))
        updated.append(SubdirPackage(pk=pk, shard_sha256=digest))
    SubdirPackage.objects.bulk_update(updated, ["shard_sha256"], batch_size=2000)
    for name, changed_revision in emptied:
        # The row stays, as a tombstone: another worker's cached records may still hold
        # the name, and only its changed revision tells that worker to reload it. Only if
        # it did not change again meanwhile: that change must stay marked.
        packages.filter(name=name, changed_revision=changed_revision).update(shard_sha256=NO_FILES)
    live = packages.exclude(shard_sha256__in=("", NO_FILES))
    return dict(live.values_list("name", "shard_sha256"))


def _stored_whole(path, size):
    """Whether the shard at ``path`` is there with all its ``size`` bytes.

    Shards are named by their hash and never change, but a worker killed while writing
    one leaves it short; no published index refers to it yet, so it is written again.
    """
    try:
        if default_storage.size(path) == size:
            return True
    except FileNotFoundError:
        return False
    log.warning("shard %s is incomplete (its writer was interrupted); writing it again", path)
    default_storage.delete(path)
    return False


def _save(folder, name, data):
    path = default_storage.save(f"{folder}/{name}", ContentFile(data))
    return {
        "path": path,
        "etag": hashlib.sha256(data).hexdigest()[:32],
        "size": len(data),
        "at": timezone.now().isoformat(),
    }


def _schedule_bz2(index):
    """Have repodata.json.bz2 follow, at most once per ``WHARF_BZ2_DELAY_SECONDS``.

    At 100,000 records bz2 takes seconds of a core and few clients read it, so it is
    never part of a rebuild: one compression is scheduled at a time, and it compresses
    whatever is served when it runs. A subdir without any .bz2 yet gets one at once.
    """
    from .tasks import refresh_bz2_task

    now = timezone.now()
    has_bz2 = repodata.REPODATA_BZ2 in index.published_files
    delay = settings.WHARF_BZ2_DELAY_SECONDS if has_bz2 else 0
    claimed = (
        SubdirIndex.objects.filter(pk=index.pk)
        .filter(Q(bz2_due_at__isnull=True) | Q(bz2_due_at__lt=now - BZ2_LOST_AFTER))
        .update(bz2_due_at=now + timedelta(seconds=delay))
    )
    if not claimed:
        return  # one is due already; it will compress what is served by then
    args = (index.channel_id, index.subdir, index.label)
    if refresh_bz2_task.app.conf.task_always_eager:
        if not delay:
            refresh_bz2(*args)  # a new subdir: it is small, and clients expect the file
            return
        # Embedded mode: in a thread, not inside the upload request that caused the rebuild.
        in_background(refresh_bz2, *args, delay=delay)
        return
    # If this fails, the due time stays set and the reconciler sends it once overdue.
    send(refresh_bz2_task, *args, countdown=delay)


background_threads = []


def in_background(function, *args, delay=0):
    """Run ``function(*args)`` in a thread after ``delay`` seconds (embedded mode's index
    work, a web process's upload cleanup)."""
    thread = threading.Thread(target=_in_background, args=(delay, function, *args))
    thread.daemon = True
    background_threads.append(thread)
    thread.start()


def _in_background(delay, function, *args):
    from django.db import connection

    try:
        time.sleep(delay)
        function(*args)
    except Exception:
        log.exception("%s%s failed", function.__name__, args)
    finally:
        connection.close()
        background_threads.remove(threading.current_thread())


def rebuild_now(channel_id, subdir, label=MAIN_LABEL):
    """Bring the subdir's ``label`` index, .bz2 included, up to date here and now.

    For commands in embedded mode: they end before a .bz2 compression delayed to a
    thread would run.
    """
    rebuild_until_current(channel_id, subdir, label=label)
    refresh_bz2(channel_id, subdir, label)


class NowAndThen:
    """Call to run ``function`` in a background thread, unless this process started it in
    the last ``seconds_setting`` seconds (0: never)."""

    def __init__(self, function, seconds_setting):
        self.function = function
        self.seconds_setting = seconds_setting
        self.last_run = None
        self._lock = threading.Lock()

    def __call__(self):
        seconds = getattr(settings, self.seconds_setting)
        if seconds <= 0:
            return
        with self._lock:
            now = time.monotonic()
            if self.last_run is not None and now - self.last_run < seconds:
                return
            self.last_run = now
        in_background(self.function)


def wait_for_background_work(timeout=60):
    """Embedded mode: wait for work started in threads (tests, orderly shutdown)."""
    for thread in list(background_threads):
        thread.join(timeout)


def refresh_bz2(channel_id, subdir, label=MAIN_LABEL):
    """Compress the served repodata.json to .bz2 unless that is done already.

    Returns the seconds spent compressing, or None when nothing was done.
    """
    found = SubdirIndex.objects.filter(channel_id=channel_id, label=label, subdir=subdir)
    # From here on a new publication schedules a new compression; one published before
    # is read below. (Read first, a publication in between would find a compression due,
    # schedule none, and stay without its .bz2 until the reconciler noticed.)
    found.update(bz2_due_at=None)
    index = found.first()
    if index is None:
        return None
    if repodata.REPODATA not in index.published_files:
        return None
    source = index.published_files[repodata.REPODATA]
    current = index.published_files.get(repodata.REPODATA_BZ2)
    if current and current.get("source") == source["etag"]:
        return None
    started = time.perf_counter()
    try:
        with default_storage.open(source["path"], "rb") as handle:
            compressed = repodata.bz2_compress(handle.read())
    except storage.ERRORS:
        if _forget_if_deleted(index):
            return None
        raise
    base = index_folder(channel_id, subdir, label)
    folder = f"{base}/bz2-{int(time.time())}-{uuid.uuid4().hex[:8]}"
    entry = _save(folder, repodata.REPODATA_BZ2, compressed)
    entry["source"] = source["etag"]
    with transaction.atomic():
        latest = SubdirIndex.objects.select_for_update().filter(pk=index.pk).first()
        if latest is not None:
            files = dict(latest.published_files)
            files[repodata.REPODATA_BZ2] = entry
            SubdirIndex.objects.filter(pk=index.pk).update(published_files=files)
    if latest is None and _forget_if_deleted(index):
        return None
    return time.perf_counter() - started


def _forget_if_deleted(index):
    """Whether ``index`` was deleted (with its channel) while files were written for it;
    if so, delete everything stored for it.

    The channel's deletion removes its stored files once it commits, but a build or a
    compression running then may write after that, and nothing would refer to what it
    wrote. Checked after writing, so one of the two always sees the other's files.
    """
    if SubdirIndex.objects.filter(pk=index.pk).exists():
        return False
    log.info(
        "%s/%s (label %s) was deleted while being written; deleting what was written",
        index.channel_id, index.subdir, index.label,
    )  # fmt: skip
    folder = index_folder(index.channel_id, index.subdir, index.label)
    if not Channel.objects.filter(pk=index.channel_id).exists():
        folder = index_folder(index.channel_id, "").rstrip("/")  # the channel's, folders too
    delete_tree(folder)
    return True


def _collect_garbage(index):
    """Delete published folders that nothing serves any more; call under the lease.

    The folder published just before is kept, and so is every folder replaced less than
    ``WHARF_RETIRED_INDEX_SECONDS`` ago: a request (or nginx, after X-Accel-Redirect) may
    have looked one up and not opened its file yet. Under a stream of uploads rebuilds
    follow each other within milliseconds, so "the one before" alone is not enough.
    A .bz2 folder is written outside the lease, so one is deleted only when it is old
    enough not to be one that is still being written.
    """
    index.refresh_from_db()
    keep = {index.published_path, index.previous_path}
    keep |= {entry["path"].rsplit("/", 1)[0] for entry in index.published_files.values()}
    base = index_folder(index.channel_id, index.subdir, index.label)
    try:
        folders, _ = default_storage.listdir(base)
    except storage.ERRORS:
        return
    now = time.time()
    bz2_cutoff = now - BZ2_GRACE_SECONDS
    retired = _retired_since(base, [f for f in folders if f.startswith("r")], index)
    for folder in folders:
        path = f"{base}/{folder}"
        if path in keep:
            continue
        if folder.startswith("r"):
            if now - retired.get(folder, 0) >= settings.WHARF_RETIRED_INDEX_SECONDS:
                delete_tree(path)
        elif folder.startswith("bz2-") and int(folder.split("-")[1]) < bz2_cutoff:
            delete_tree(path)


def _retired_since(base, folders, index):
    """{folder: when it stopped being served} for revision folders ("r<revision>-...").

    A folder stopped being served when the next newer one was published; that one's
    repodata.json was written just before, so its modification time stands for it.
    """
    if settings.WHARF_RETIRED_INDEX_SECONDS <= 0:
        return {}

    def revision(folder):
        try:
            return int(folder[1:].split("-")[0])
        except ValueError:
            return -1

    ordered = sorted(folders, key=revision)
    retired = {}
    for older, newer in zip(ordered, ordered[1:], strict=False):
        try:
            modified = default_storage.get_modified_time(f"{base}/{newer}/{repodata.REPODATA}")
        except storage.ERRORS:
            continue  # being written or deleted: its predecessor waits for the next round
        retired[older] = modified.timestamp()
    return retired


def delete_tree(folder):
    """Delete every stored file below ``folder``."""
    if storage.in_bucket():
        storage.delete_bucket_folder(folder)
        return
    try:
        folders, names = default_storage.listdir(folder)
    except (FileNotFoundError, OSError):
        return
    for sub in folders:
        delete_tree(f"{folder}/{sub}")
    for name in names:
        default_storage.delete(f"{folder}/{name}")
    remove_empty_local_folder(folder)


def remove_empty_local_folder(folder):
    # Object stores have no folders; a local directory would otherwise stay behind.
    with contextlib.suppress(NotImplementedError, OSError):
        os.rmdir(default_storage.path(folder))


def publish_empty_noarch(channel):
    """Every channel has noarch/repodata.json from the moment it exists."""
    index, _ = SubdirIndex.objects.get_or_create(channel=channel, label=MAIN_LABEL, subdir="noarch")
    if index.built_revision < 0:
        publish(index, index.requested_revision)
