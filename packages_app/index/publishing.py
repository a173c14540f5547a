"""Building a subdir's index files and switching what is served to them in one step."""

import logging
import time
import uuid

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from channels_app.models import Channel, Kind
from packages_app import storage
from packages_app.index import repodata
from packages_app.index.bz2_refresh import schedule_bz2
from packages_app.index.garbage import collect_garbage
from packages_app.index.records import FULL_RELOAD_NAMES, load, record_sets
from packages_app.index.store import (
    forget_if_deleted,
    index_folder,
    save_index_files,
    save_shard,
)
from packages_app.models import MAIN_LABEL, PackageFile, SubdirIndex, SubdirPackage
from registry import metrics

log = logging.getLogger(__name__)
# SubdirPackage.shard_sha256 of a name whose files are all gone: it has no shard.
NO_FILES = "-"


def publish(index, revision, owner=None):
    """Build and publish the subdir's index files as of ``revision``.

    Returns timings: ``seconds`` until repodata.json, .zst, the shard index and
    current_repodata.json (.zst) are served. repodata.json.bz2 follows in a job of its
    own (:mod:`.bz2_refresh`).
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
        pending = load(index, records, None)
    else:
        pending = load(index, records, [name for (name,) in changed])

    digests = _write_changed_shards(index, records, revision)

    base = index_folder(index.channel_id, index.subdir, index.label)
    folder = f"{base}/r{revision}-{uuid.uuid4().hex[:8]}"
    published = save_index_files(folder, index.subdir, records, digests)
    previous_bz2 = index.published_files.get(repodata.REPODATA_BZ2)
    if previous_bz2:
        published[repodata.REPODATA_BZ2] = previous_bz2

    if not _switch(index, owner, folder, published, pending, revision):
        if forget_if_deleted(index):
            return None
        log.warning(
            "lost the lease of %s/%s (label %s) before publishing revision %s; not published",
            index.channel_id, index.subdir, index.label, revision,
        )  # fmt: skip
        storage.delete_tree(folder)
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

    collect_garbage(index)
    transaction.on_commit(lambda: schedule_bz2(index))
    return {"records": len(records), "seconds": seconds}


def _switch(index, owner, folder, published, pending, revision):
    """Serve the files written to ``folder`` and mark ``pending`` files indexed, in one
    transaction; False (nothing changed) when ``owner`` no longer holds the lease."""
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
    return bool(switched)


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
        if name not in records.names:
            emptied.append((name, changed_revision))
            continue
        digest, _ = save_shard(
            index.channel_id, index.subdir, records, name, compressor, index.label
        )
        updated.append(SubdirPackage(pk=pk, shard_sha256=digest))
    SubdirPackage.objects.bulk_update(updated, ["shard_sha256"], batch_size=2000)
    for name, changed_revision in emptied:
        # The row stays, as a tombstone: another worker's cached records may still hold
        # the name, and only its changed revision tells that worker to reload it. Only if
        # it did not change again meanwhile: that change must stay marked.
        packages.filter(name=name, changed_revision=changed_revision).update(shard_sha256=NO_FILES)
    live = packages.exclude(shard_sha256__in=("", NO_FILES))
    return dict(live.values_list("name", "shard_sha256"))


def publish_empty_noarch(channel):
    """Every hosted or mirror channel has noarch/repodata.json from the moment it exists
    (a proxy's comes from its upstream, a combined channel's from its channels)."""
    if channel.kind in (Kind.PROXY, Kind.COMBINED):
        return
    index, _ = SubdirIndex.objects.get_or_create(channel=channel, label=MAIN_LABEL, subdir="noarch")
    if index.built_revision < 0:
        publish(index, index.requested_revision)
