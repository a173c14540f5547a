"""Stored objects no committed row refers to yet, or any more: recorded, so never lost track of.

Bytes reach storage before the transaction that records them commits (an upload, an
import batch), and leave it after the one that forgets them (a delete, a replacement).
A process killed in between would leave an object that nothing names. So:

- Before writing, :func:`stage` records the paths (:class:`StagedFile`, committed at
  once) under a lease (:mod:`packages_app.leases`) that the writer's keeper renews. The
  transaction that records the files takes the records back (:meth:`Staging.commit`),
  and fails if they are gone: a sweep took them because the lease had lapsed.
- Inside the transaction that forgets a file, :func:`discard_on_commit` records its
  object as one to delete; once that commits, the object and the record go.
- An upload in two requests (the anaconda.org protocol: the bytes, then a commit)
  parks its records until a deadline when the first request ends (:meth:`Staging.park`),
  and the commit takes them over (:func:`adopt`); past the deadline they are as lapsed
  as a dead writer's.

:func:`sweep` deletes the objects of records whose lease lapsed (their writer died
seconds ago) or that name an object to delete (its deleter died before it could), unless
a file row refers to the object. It runs with the upload cleanup (:mod:`.intake.cleanup`):
when a process starts, periodically, and before each import.
"""

import logging
import uuid
from contextlib import contextmanager

from django.db import DatabaseError, connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from packages_app import leases, storage
from packages_app.models import PackageFile, StagedFile

log = logging.getLogger(__name__)


class StagingLost(Exception):
    """The lease on staged objects lapsed and a sweep took them: the caller's transaction
    must not commit files whose bytes are being deleted."""


class Staging:
    """Paths being written by this process (see :func:`stage`)."""

    def __init__(self, channel, paths, kind):
        self.channel = channel
        self.holder = f"{kind}-{uuid.uuid4().hex}"
        self.paths = list(paths)
        self.committed = set()

    def add(self, paths):
        """Record more paths under the same lease (committed at once)."""
        paths = [path for path in paths if path not in self.paths]
        _record(self.channel, paths, self.holder)
        self.paths += paths

    def commit(self, paths=None):
        """Inside the transaction that records the files at ``paths`` (default all): take
        their records back, or raise :class:`StagingLost` if a sweep took them."""
        paths = list(self.paths if paths is None else paths)
        taken, _ = StagedFile.objects.filter(storage_path__in=paths, holder=self.holder).delete()
        if taken != len(paths):
            raise StagingLost(
                f"the lease on {len(paths) - taken} of {len(paths)} stored objects lapsed "
                "before they were recorded; they are being deleted"
            )
        transaction.on_commit(lambda: self.committed.update(paths))

    def release(self):
        """Delete the objects not committed, then their records.

        A commit whose answer was lost (the connection broke after PostgreSQL committed)
        looks failed here: an object a file row refers to is kept. If the database cannot
        be asked, the records stay, and the sweep decides once it can.
        """
        pending = [path for path in self.paths if path not in self.committed]
        if not pending:
            return
        try:
            referenced = set(
                PackageFile.objects.filter(storage_path__in=pending).values_list(
                    "storage_path", flat=True
                )
            )
            StagedFile.objects.filter(storage_path__in=referenced).delete()
        except DatabaseError:
            log.warning("could not check %d staged objects; the sweep will", len(pending))
            return
        _delete_objects([path for path in pending if path not in referenced])

    def park(self, key, until):
        """Leave the objects not committed to a later request: their records are held
        as ``key`` (see :func:`parked_holder`) until ``until``, no longer by this process,
        and are not deleted when the block ends; raise :class:`StagingLost` if a sweep
        took them meanwhile."""
        paths = [path for path in self.paths if path not in self.committed]
        self.paths = []  # the keeper stops renewing them (renew() needs no row now)
        parked = StagedFile.objects.filter(storage_path__in=paths, holder=self.holder).update(
            holder=parked_holder(key), held_until=until
        )
        if parked != len(paths):
            self.paths = paths  # release() deletes what is left of them
            raise StagingLost(f"the lease on {len(paths) - parked} stored objects lapsed")

    def renew(self):
        return (
            StagedFile.objects.filter(holder=self.holder).update(held_until=leases.until()) > 0
            or not self.paths
        )


@contextmanager
def stage(channel, paths=(), kind="upload"):
    """Record ``paths`` as being written by this process; yield the :class:`Staging`.
    ``kind`` (``upload``, ``import``) starts the holder's name (see :func:`sweep`).

    Call outside any transaction, before writing: the records must be committed before a
    byte is. What was not committed (:meth:`Staging.commit`) when the block ends is
    deleted from storage, also when the block fails.
    """
    if connection.in_atomic_block:
        raise RuntimeError("stage() records paths before writing; call it outside transactions")
    staging = Staging(channel, (), kind)
    with leases.kept(("staged", staging.holder), staging.renew):
        staging.add(paths)
        try:
            yield staging
        finally:
            staging.release()


# The holders of records parked for a later request (Staging.park): no process renews
# them, they lapse at their deadline.
PARKED = "parked-"


def parked_holder(key):
    return f"{PARKED}{key}"


@contextmanager
def adopt(channel, paths, key):
    """:func:`stage` for objects stored by an earlier request and parked as ``key``
    (:meth:`Staging.park`): their records are taken over by this process, under its
    lease, if they are still parked and their deadline has not passed; otherwise
    :class:`StagingLost`. As with :func:`stage`, what is not committed is deleted when
    the block ends."""
    if connection.in_atomic_block:
        raise RuntimeError("adopt() takes records over for good; call it outside transactions")
    paths = list(paths)
    staging = Staging(channel, (), "upload")
    with leases.kept(("staged", staging.holder), staging.renew):
        taken = StagedFile.objects.filter(
            channel=channel, storage_path__in=paths, holder=parked_holder(key),
            held_until__gte=timezone.now(),
        ).update(holder=staging.holder, held_until=leases.until())  # fmt: skip
        if taken != len(paths):
            raise StagingLost(f"{len(paths) - taken} of {len(paths)} parked objects are gone")
        staging.paths = paths
        try:
            yield staging
        finally:
            staging.release()


def _record(channel, paths, holder):
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Not worth a WAL flush of its own (about a tenth of upload throughput,
            # measured): only a database crash in the same instant as this process's
            # death could lose the record, and check_storage reports that object.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        StagedFile.objects.bulk_create(
            [
                StagedFile(
                    channel=channel, storage_path=p, holder=holder, held_until=leases.until()
                )
                for p in paths
            ]
        )


def discard_on_commit(channel, path):
    """Inside the transaction that forgets the file stored at ``path``: delete its object
    once that commits (recorded, so that a sweep deletes it if this process dies first)."""
    StagedFile.objects.update_or_create(
        storage_path=path, defaults={"channel": channel, "holder": "", "held_until": None}
    )
    transaction.on_commit(lambda: _delete_objects([path]))


def _delete_objects(paths):
    released = []
    for path in paths:
        try:
            storage.delete_package_object(path)
        except Exception:
            log.exception("could not delete %s; the next sweep will", path)
        else:
            released.append(path)
    StagedFile.objects.filter(storage_path__in=released).delete()


def lapsed():
    """Records no live writer holds: their lease lapsed, or they name objects to delete."""
    return StagedFile.objects.filter(Q(held_until__isnull=True) | Q(held_until__lt=timezone.now()))


def seconds_until_held_lapse():
    """Seconds until every lease on staged objects held now has lapsed (None: none is).

    Parked records are not leases of a process: their deadline is far, and the periodic
    sweeps take them."""
    held = StagedFile.objects.filter(held_until__gte=timezone.now()).exclude(
        holder__startswith=PARKED
    )
    latest = held.aggregate(latest=Max("held_until"))["latest"]
    return None if latest is None else max(0.0, (latest - timezone.now()).total_seconds())


def sweep(channel=None, *, dead=None):
    """Delete the objects of lapsed records that no file row refers to, and the records;
    return how many objects were deleted. ``dead`` (a kind, with ``channel``): the
    caller knows that no holder of that kind is alive in the channel, lapsed or not (an
    import that holds the channel's import lock)."""
    sweeper = f"sweep-{uuid.uuid4().hex}"
    with transaction.atomic():
        found = lapsed()
        if channel is not None:
            found = found.filter(channel=channel)
        if dead is not None:
            found = found | StagedFile.objects.filter(
                channel=channel, holder__startswith=f"{dead}-"
            )
        found = found.select_for_update(skip_locked=True)
        paths = list(found.values_list("storage_path", flat=True))
        # Claimed, and committed before any object is deleted: a writer whose lease lapsed
        # then fails to commit (Staging.commit) instead of recording deleted bytes. An
        # object that cannot be deleted now keeps its record, for a later sweep.
        StagedFile.objects.filter(storage_path__in=paths).update(
            holder=sweeper, held_until=leases.until()
        )
    if not paths:
        return 0
    referenced = set(
        PackageFile.objects.filter(storage_path__in=paths).values_list("storage_path", flat=True)
    )
    StagedFile.objects.filter(storage_path__in=referenced).delete()
    orphans = [path for path in paths if path not in referenced]
    _delete_objects(orphans)
    if orphans:
        log.info("deleted %d stored objects that killed processes left unrecorded", len(orphans))
    return len(orphans)
