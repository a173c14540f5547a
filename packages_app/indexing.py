"""Keeping each (channel, subdir) index in step with its package files.

A change to a subdir calls :func:`request_rebuild` inside its transaction; after commit a
Celery task runs :func:`rebuild_until_current`. Rebuilds of one subdir never overlap (a
lease on its :class:`SubdirIndex` row) and coalesce: a rebuild publishes everything
committed so far, so a burst of uploads causes a few rebuilds, not one each.

Publishing is atomic: the new files are written to a fresh storage folder first, then one
row update switches what is served. Shards are named by their hash and never change.
"""

import contextlib
import hashlib
import logging
import os
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from . import repodata
from .models import PackageFile, SubdirIndex

log = logging.getLogger(__name__)


def index_folder(channel_id, subdir):
    return f"index/{channel_id}/{subdir}"


def shard_path(channel_id, subdir, digest_hex):
    return f"{index_folder(channel_id, subdir)}/shards/{digest_hex}.msgpack.zst"


def request_rebuild(channel, subdir):
    """Record that ``subdir`` changed; call inside the transaction that changed it."""
    from .tasks import rebuild_subdir_index

    index, _ = SubdirIndex.objects.get_or_create(channel=channel, subdir=subdir)
    SubdirIndex.objects.filter(pk=index.pk).update(requested_revision=F("requested_revision") + 1)
    channel_id = channel.pk

    def enqueue():
        try:
            rebuild_subdir_index.delay(channel_id, subdir)
        except Exception:
            # The change is committed and its revision recorded, so nothing is lost: the
            # next change to this subdir, or a reindex request, publishes it.
            log.exception("could not enqueue the index rebuild of %s/%s", channel_id, subdir)

    transaction.on_commit(enqueue)
    index.refresh_from_db(fields=["requested_revision"])
    return index.requested_revision


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


def rebuild_until_current(channel_id, subdir):
    """Publish the subdir until its index reflects every committed change.

    Safe to call any number of times, from any number of workers: a caller that finds
    the lease taken returns at once, because the holder re-reads the requested revision
    after each round and again after letting the lease go.
    Returns the number of rebuilds this call performed.
    """
    index = SubdirIndex.objects.filter(channel_id=channel_id, subdir=subdir).first()
    if index is None:
        return 0
    owner = str(uuid.uuid4())
    rebuilds = 0
    while not index.is_current:
        if not _take_lease(index.pk, owner):
            return rebuilds
        try:
            while True:
                index.refresh_from_db()
                if index.is_current:
                    break
                publish(index, index.requested_revision)
                rebuilds += 1
                _take_lease(index.pk, owner)  # renew between rounds
        finally:
            _release_lease(index.pk, owner)
        index.refresh_from_db()
    return rebuilds


def publish(index, revision):
    """Build and publish the subdir's index files as of ``revision``."""
    files = list(
        PackageFile.objects.filter(
            channel_id=index.channel_id,
            subdir=index.subdir,
            state__in=[PackageFile.State.PENDING, PackageFile.State.INDEXED],
        ).values_list("pk", "filename", "record")
    )
    built = repodata.build_index_files(index.subdir, [(fn, rec) for _, fn, rec in files])

    for digest_hex, data in built.shards.items():
        path = shard_path(index.channel_id, index.subdir, digest_hex)
        if not default_storage.exists(path):
            default_storage.save(path, ContentFile(data))

    folder = f"{index_folder(index.channel_id, index.subdir)}/r{revision}-{uuid.uuid4().hex[:8]}"
    published = {}
    for name, data in built.files.items():
        default_storage.save(f"{folder}/{name}", ContentFile(data))
        published[name] = {"etag": hashlib.sha256(data).hexdigest()[:32], "size": len(data)}

    now = timezone.now()
    with transaction.atomic():
        stale = index.previous_path
        SubdirIndex.objects.filter(pk=index.pk).update(
            published_path=folder,
            previous_path=index.published_path,
            published_files=published,
            published_at=now,
            built_revision=revision,
            rebuild_count=F("rebuild_count") + 1,
        )
        PackageFile.objects.filter(
            pk__in=[pk for pk, _, _ in files], state=PackageFile.State.PENDING
        ).update(state=PackageFile.State.INDEXED, indexed_at=now)
    # Keep the folder published just before, for requests that already looked it up.
    if stale:
        transaction.on_commit(lambda: _delete_folder(stale))
    log.info(
        "published %s/%s revision %s: %d files",
        index.channel_id,
        index.subdir,
        revision,
        len(files),
    )


def _delete_folder(folder):
    try:
        _, names = default_storage.listdir(folder)
        for name in names:
            default_storage.delete(f"{folder}/{name}")
        remove_empty_local_folder(folder)
    except (FileNotFoundError, OSError):
        log.warning("could not remove old index folder %s", folder, exc_info=True)


def delete_tree(folder):
    """Delete every stored file below ``folder``."""
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
    index, _ = SubdirIndex.objects.get_or_create(channel=channel, subdir="noarch")
    if index.built_revision < 0:
        publish(index, index.requested_revision)
