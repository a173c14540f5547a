"""Built entries of combined channels' subdirs, shared by every process.

An entry (:class:`~packages_app.models.CombinedIndex`) is found by its key
(:func:`.merge.key_of`). The first request for a key builds it under the row's lease
(:mod:`packages_app.leases`): concurrent requests for the same key wait for that build
instead of doing it again, and a builder killed mid-build loses its lease within
``WHARF_LEASE_SECONDS``, after which a waiting request builds. Entries nobody used for a
while are collected, beyond the ``KEEP`` most recently used of each subdir.
"""

import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from packages_app import leases, storage
from packages_app.index import repodata
from packages_app.index.store import index_folder, save
from packages_app.models import CombinedIndex

from . import merge

# How long a request waits for another process's build before it is answered 503.
WAIT_SECONDS = 60
# Entries of each (channel, subdir) kept whatever their age: several callers' readable
# members may differ, and each set has an entry of its own.
KEEP = 4
# ``used_at`` is written at most this often, so serving an entry rarely writes.
TOUCH_SECONDS = 60
# Facts of entries, read once per process: {entry folder: facts}.
_FACTS = {}
_FACTS_KEPT = 64


class Busy(Exception):
    """Another process is building the entry and did not finish in ``WAIT_SECONDS``."""


def entry(channel, subdir, sources):
    """The built :class:`CombinedIndex` of ``sources`` for ``subdir``, built here if no
    process has built it yet."""
    key = merge.key_of(subdir, sources)
    rows = CombinedIndex.objects.filter(channel=channel, subdir=subdir, key=key)
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        found = rows.first()
        if found is None:
            try:
                with transaction.atomic():
                    found = CombinedIndex.objects.create(channel=channel, subdir=subdir, key=key)
            except IntegrityError:
                found = rows.get()  # created by another request meanwhile
        if found.built_at is not None:
            _touch(found)
            return found
        built = _build(found, sources)
        if built is not None:
            return built
        if time.monotonic() > deadline:
            raise Busy(f"The index of {subdir} is being built; try again in a few seconds.")
        time.sleep(0.1)


def _build(found, sources):
    """Build the entry under its lease; None when another process holds the lease (or
    took it over from this one)."""
    owner = str(uuid.uuid4())
    now = timezone.now()
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    mine = CombinedIndex.objects.filter(pk=found.pk, built_at__isnull=True)
    if not mine.filter(free).update(lease_owner=owner, lease_until=leases.until()):
        return None
    held = mine.filter(lease_owner=owner)
    folder = f"{index_folder(found.channel_id, found.subdir)}/c{found.pk}-{owner[:8]}"
    try:
        with leases.kept(("combined", found.pk), lambda: held.update(lease_until=leases.until())):
            files = merge.write(found.channel_id, found.subdir, folder, sources)
            done = held.update(
                files=files, folder=folder, built_at=timezone.now(), used_at=timezone.now(),
                lease_owner="", lease_until=None,
            )  # fmt: skip
    except Exception:
        # Let the next request try at once rather than after the lease.
        held.update(lease_owner="", lease_until=None)
        storage.delete_tree(folder)
        raise
    if not done:
        storage.delete_tree(folder)
        return None
    collect(found.channel_id, found.subdir)
    found.refresh_from_db()
    return found


def _touch(found):
    now = timezone.now()
    if now - found.used_at >= timedelta(seconds=TOUCH_SECONDS):
        CombinedIndex.objects.filter(pk=found.pk).update(used_at=now)


def facts(found):
    """{"winners": {package name: member id}, "shards": {hex digests}} of a built entry."""
    known = _FACTS.get(found.folder)  # a folder is one build's: never reused
    if known is None:
        known = merge.read_facts(found.folder)
        known["shards"] = set(known["shards"])
        if len(_FACTS) >= _FACTS_KEPT:
            _FACTS.pop(next(iter(_FACTS)))
        _FACTS[found.folder] = known
    return known


def files_with_bz2(found):
    """The entry's files, repodata.json.bz2 included: compressed at its first request
    (few clients read it). Two processes may both compress; either result is the same."""
    if repodata.REPODATA_BZ2 not in found.files:
        files = dict(found.files)
        files[repodata.REPODATA_BZ2] = save(
            found.folder, repodata.REPODATA_BZ2, merge.bz2_of(found.files)
        )
        CombinedIndex.objects.filter(pk=found.pk).update(files=files)
        found.files = files
    return found.files


def collect(channel_id, subdir):
    """Delete the entries of (channel, subdir) beyond the ``KEEP`` most recently used
    that nobody used for ``WHARF_RETIRED_INDEX_SECONDS`` plus ``TOUCH_SECONDS`` (a
    request may have just read one), builds abandoned as long ago, and the folders of
    builds that were killed."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.WHARF_RETIRED_INDEX_SECONDS + TOUCH_SECONDS)
    rows = CombinedIndex.objects.filter(channel_id=channel_id, subdir=subdir)
    recent = list(rows.filter(built_at__isnull=False).order_by("-used_at")[:KEEP])
    unleased = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    old = rows.exclude(pk__in=[r.pk for r in recent]).filter(unleased, used_at__lt=cutoff)
    for pk, folder in old.values_list("pk", "folder"):
        CombinedIndex.objects.filter(pk=pk).delete()
        _FACTS.pop(folder, None)
    base = index_folder(channel_id, subdir)
    try:
        folders, _ = default_storage.listdir(base)
    except storage.ERRORS:
        return
    kept = dict(rows.values_list("pk", "folder"))
    for name in folders:
        pk = name[1:].split("-")[0]
        if not name.startswith("c") or not pk.isdigit():
            continue
        path = f"{base}/{name}"
        if int(pk) not in kept or kept[int(pk)] not in ("", path):
            storage.delete_tree(path)
