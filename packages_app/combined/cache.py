"""Built entries of combined channels' subdirs, shared by every process.

An entry (:class:`~packages_app.models.CombinedIndex`) is found by its key
(:func:`.merge.key_of`) and built in two steps, each under the row's lease
(:mod:`packages_app.leases`), so that concurrent requests wait for one build instead of
doing it again and a builder killed mid-build loses its lease within
``WHARF_LEASE_SECONDS``:

1. the shard index and the winners of each name (:mod:`.merge`), built by the first
   request for the key: small files, read from the members' shard indexes;
2. repodata.json and the files made from it (:mod:`.documents`), built when a client
   first asks for one of them. When the same members (the same kind of caller) have an
   older entry with them, that one is served while the new one is built in the
   background (stale-while-revalidate): a request waits ``FRESH_SECONDS`` at most for the
   new build, never for all of it and never for a 503. Only while a build is on its way:
   one lost is sent again once its lease lapses, and a state whose documents are still
   not built ``STALE_SECONDS`` after it was first asked for is built by the request.

Entries nobody used for a while are collected, beyond the ``KEEP`` most recently used of
each subdir.
"""

import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from channels_app.models import Channel
from packages_app import leases, runner, storage
from packages_app.index import repodata
from packages_app.index.store import index_folder
from packages_app.models import MAIN_LABEL, CombinedIndex, SubdirIndex

from . import documents, merge

# How long a request waits for another process's build before it is answered 503 (or,
# when an older entry of its members exists, with that one).
WAIT_SECONDS = 60
# How long a request for repodata.json waits for a new build when it may answer with an
# older entry of the same members meanwhile.
FRESH_SECONDS = 2
# A state whose repodata.json was first asked for this long ago and is not built yet is
# built by the request that asks (background builds failed or were never taken).
STALE_SECONDS = 600
# A build sent to the background is sent again when it has not started by then.
SENT_SECONDS = 60
POLL_SECONDS = 0.05
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


def sources_of(members):
    """The :class:`.merge.Source` of each member (channels, in priority order): what it
    publishes in every subdir."""
    sources = {member.pk: merge.Source(member) for member in members}
    published = SubdirIndex.objects.filter(channel_id__in=sources, label=MAIN_LABEL)
    rows = published.values_list("channel_id", "subdir", "published_files")
    for member_id, subdir, files in rows:
        if repodata.REPODATA in (files or {}):
            sources[member_id].indexes[subdir] = files
    return [sources[member.pk] for member in members]


def entry(channel, subdir, sources):
    """The :class:`CombinedIndex` of ``sources`` for ``subdir`` with its shard index,
    built here if no process has built it yet."""
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
        built = _build_shard_index(found, sources)
        if built is not None:
            return built
        if time.monotonic() > deadline:
            return _older_or_busy(found, Q(built_at__isnull=False))
        time.sleep(0.1)


def _build_shard_index(found, sources):
    """Build the entry's shard index under its lease; None when another process holds
    the lease (or took it over from this one)."""
    owner = str(uuid.uuid4())
    now = timezone.now()
    mine = CombinedIndex.objects.filter(pk=found.pk, built_at__isnull=True)
    if not mine.filter(_free(now)).update(lease_owner=owner, lease_until=leases.until()):
        return None
    held = mine.filter(lease_owner=owner)
    folder = f"{index_folder(found.channel_id, found.subdir)}/c{found.pk}-{owner[:8]}"
    try:
        with leases.kept(("combined", found.pk), lambda: held.update(lease_until=leases.until())):
            files = merge.write_shard_index(found.subdir, folder, sources)
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


def with_documents(found, sources):
    """The entry whose repodata.json (and the files made from it) answer for ``found``'s
    state: ``found`` once they are built, here or in the background; meanwhile an older
    entry of the same members, when there is one (see the module's docstring)."""
    if repodata.REPODATA in found.files:
        return found
    older = _older(found, Q(files__has_key=repodata.REPODATA))
    waited = timezone.now() - found.built_at
    if older is None or waited > timedelta(seconds=STALE_SECONDS):
        return _documents_here(found, sources)
    _send_build(found, sources)
    if _documents_within(found, FRESH_SECONDS):
        return found
    _touch(older)
    return older


def _documents_here(found, sources):
    """Build the documents in this request, or wait for the process that builds them."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        owner = str(uuid.uuid4())
        if _claim_documents(found, owner, leases.until()):
            if _build_documents(found, sources, owner):
                return found
        elif _documents_within(found, 0.1):
            return found
        if time.monotonic() > deadline:
            return _older_or_busy(found, Q(files__has_key=repodata.REPODATA))


def _send_build(found, sources):
    """Have the documents of ``found`` built in the background, unless a build of the
    same members' documents is on its way."""
    now = timezone.now()
    same_members = CombinedIndex.objects.filter(
        channel_id=found.channel_id, subdir=found.subdir,
        key__startswith=found.key[: merge.MEMBERS_DIGITS],
    )  # fmt: skip
    if same_members.filter(built_at__isnull=False, lease_until__gt=now).exists():
        return
    owner = str(uuid.uuid4())
    if _claim_documents(found, owner, now + timedelta(seconds=SENT_SECONDS)):
        members = [source.pk for source in sources]
        runner.send(build_documents, found.pk, owner, members, detached=True)


def build_documents(entry_id, owner, member_ids):
    """Build the documents of the entry ``entry_id`` for the lease ``owner`` took when it
    sent this; nothing when the lease is no longer its own or the members published
    since (a request for the new state sends its own build)."""
    held = CombinedIndex.objects.filter(pk=entry_id, lease_owner=owner)
    if not held.update(lease_until=leases.until()):
        return "taken"
    found = held.get()
    channels = Channel.objects.in_bulk(member_ids)
    members = [channels[pk] for pk in member_ids if pk in channels]
    sources = sources_of(members)
    if len(members) != len(member_ids) or merge.key_of(found.subdir, sources) != found.key:
        held.update(lease_owner="", lease_until=None)
        return "changed"
    return "built" if _build_documents(found, sources, owner) else "taken"


def _claim_documents(found, owner, until):
    now = timezone.now()
    unbuilt = CombinedIndex.objects.filter(pk=found.pk, built_at__isnull=False).exclude(
        files__has_key=repodata.REPODATA
    )
    return bool(unbuilt.filter(_free(now)).update(lease_owner=owner, lease_until=until))


def _build_documents(found, sources, owner):
    """Build the documents under the lease ``owner`` holds; False when it was lost."""
    held = CombinedIndex.objects.filter(pk=found.pk, lease_owner=owner)
    folder = f"{found.folder}/d-{owner[:8]}"
    try:
        with leases.kept(("combined", found.pk), lambda: held.update(lease_until=leases.until())):
            winners = facts(found)["winners"]
            files = {**found.files, **documents.write(folder, found.subdir, sources, winners)}
            done = held.update(files=files, lease_owner="", lease_until=None)
    except Exception:
        held.update(lease_owner="", lease_until=None)
        storage.delete_tree(folder)
        raise
    if not done:
        storage.delete_tree(folder)
        return False
    found.files = files
    return True


def _documents_within(found, seconds):
    """Whether the documents of ``found`` are built within ``seconds`` (by anyone)."""
    deadline = time.monotonic() + seconds
    while True:
        files = CombinedIndex.objects.filter(pk=found.pk).values_list("files", flat=True).first()
        if files and repodata.REPODATA in files:
            found.files = files
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)


def _older(found, having):
    """The newest other entry of the same subdir and members that has ``having``."""
    rows = CombinedIndex.objects.filter(
        channel_id=found.channel_id, subdir=found.subdir,
        key__startswith=found.key[: merge.MEMBERS_DIGITS],
    ).exclude(pk=found.pk)  # fmt: skip
    return rows.filter(having).order_by("-built_at").first()


def _older_or_busy(found, having):
    older = _older(found, having)
    if older is None:
        raise Busy(f"The index of {found.subdir} is being built; try again in a few seconds.")
    _touch(older)
    return older


def _free(now):
    return Q(lease_until__isnull=True) | Q(lease_until__lt=now)


def _touch(found):
    now = timezone.now()
    if now - found.used_at >= timedelta(seconds=TOUCH_SECONDS):
        CombinedIndex.objects.filter(pk=found.pk).update(used_at=now)


def facts(found):
    """{"winners": {package name: member id}, "shards": {hex digest: member id}} of a
    built entry (:func:`.merge.read_facts`)."""
    known = _FACTS.get(found.folder)  # a folder is one build's: never reused
    if known is None:
        known = merge.read_facts(found.folder)
        if len(_FACTS) >= _FACTS_KEPT:
            _FACTS.pop(next(iter(_FACTS)))
        _FACTS[found.folder] = known
    return known


def files_with_bz2(found):
    """The entry's files, repodata.json.bz2 included: compressed at its first request
    (few clients read it). Two processes may both compress; either result is the same."""
    if repodata.REPODATA_BZ2 not in found.files:
        files = dict(found.files)
        files[repodata.REPODATA_BZ2] = documents.bz2_of(found.folder, found.files)
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
    old = rows.exclude(pk__in=[r.pk for r in recent]).filter(_free(now), used_at__lt=cutoff)
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
