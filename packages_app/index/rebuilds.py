"""Requesting rebuilds inside the changing transaction, and running them under a lease."""

import uuid
from datetime import timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from packages_app import leases, runner
from packages_app.index.bz2_refresh import refresh_bz2
from packages_app.index.publishing import publish
from packages_app.models import MAIN_LABEL, PackageFile, SubdirIndex, SubdirPackage


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


def enqueue_rebuild(channel_id, subdir, label=MAIN_LABEL):
    """Start a rebuild once the current transaction commits.

    A broker that cannot be reached does not fail the change: it is committed with its
    revision, so the reconciler (:mod:`.reconcile`) sends the rebuild later.
    """
    transaction.on_commit(lambda: runner.send(rebuild_until_current, channel_id, subdir, label))


def take_lease(index_id, owner):
    now = timezone.now()
    return (
        SubdirIndex.objects.filter(pk=index_id)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now) | Q(lease_owner=owner))
        .update(lease_until=leases.until(), lease_owner=owner)
        == 1
    )


def renew_lease(index_id, owner):
    """Run by this process's lease keeper while the rebuild runs."""
    renewed = SubdirIndex.objects.filter(pk=index_id, lease_owner=owner)
    return renewed.update(lease_until=leases.until()) == 1


def release_lease(index_id, owner):
    SubdirIndex.objects.filter(pk=index_id, lease_owner=owner).update(
        lease_until=None, lease_owner=""
    )


def rebuild_until_current(channel_id, subdir, label=MAIN_LABEL, owner=None):
    """Publish the subdir's ``label`` index until it reflects every committed change.

    Safe to call any number of times, from any number of workers: a caller that finds
    the lease taken returns at once, because the holder re-reads the requested revision
    after each round and again after letting the lease go — and, in case the holder has
    died, has a rebuild sent for when its lease lapses (:func:`look_again_after_lease`).
    The lease is renewed by this process's keeper while the rebuild runs
    (:mod:`packages_app.leases`). ``owner`` names the holder (a task passes its id, so
    that its retry takes the lease back at once).
    Returns the number of rebuilds this call performed.
    """
    index = SubdirIndex.objects.filter(channel_id=channel_id, label=label, subdir=subdir).first()
    if index is None:
        return 0
    owner = owner or str(uuid.uuid4())
    rebuilds = 0
    while not index.is_current:
        if not take_lease(index.pk, owner):
            look_again_after_lease(index.pk)
            return rebuilds
        try:
            with leases.kept(("index", index.pk), lambda: renew_lease(index.pk, owner)):
                while True:
                    index.refresh_from_db()
                    if index.is_current:
                        break
                    if publish(index, index.requested_revision, owner=owner) is None:
                        return rebuilds  # the lease lapsed and another worker took over
                    rebuilds += 1
        finally:
            release_lease(index.pk, owner)
        index.refresh_from_db()
    return rebuilds


def look_again_after_lease(index_id):
    """Have a rebuild sent for when the lease on the index lapses, unless one is sent
    already or the holder is alive in this process.

    The holder re-reads the requested revision before it lets go, so a change made while
    it builds is published — unless it dies. Then its lease lapses within
    ``WHARF_LEASE_SECONDS``, and the rebuild sent here publishes what it left.
    Returns whether one was sent.
    """
    if leases.held_here(("index", index_id)):
        return False
    now = timezone.now()
    # One statement in the common case (a look-again is claimed already): under a stream
    # of uploads most rebuild tasks end here.
    claimed = (
        SubdirIndex.objects.filter(pk=index_id, lease_until__gt=now)
        .filter(Q(recheck_at__isnull=True) | Q(recheck_at__lt=now))
        .update(recheck_at=F("lease_until") + timedelta(seconds=1))
    )
    if not claimed:
        return False  # sent already, or the lease lapsed or was let go meanwhile
    found = SubdirIndex.objects.filter(pk=index_id)
    row = found.values_list("recheck_at", "channel_id", "subdir", "label").first()
    if row is None:
        return False
    at, channel_id, subdir, label = row
    return runner.send(
        rebuild_until_current, channel_id, subdir, label,
        countdown=max(0.0, (at - now).total_seconds()),
    )  # fmt: skip


def rebuild_now(channel_id, subdir, label=MAIN_LABEL):
    """Bring the subdir's ``label`` index, .bz2 included, up to date here and now.

    For commands: they may end before a .bz2 compression delayed to later would run.
    """
    rebuild_until_current(channel_id, subdir, label=label)
    refresh_bz2(channel_id, subdir, label)
