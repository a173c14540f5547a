"""Sending again the index work that was requested but never done.

Every change records in its own transaction what it needs — the subdir's requested
revision is raised, a .bz2 compression gets a due time — and only after commit sends a
task. That task can still be lost: the broker was down, the worker that took it was
killed (with Redis an unacknowledged message comes back only after the visibility
timeout, an hour), or it kept failing past its retries. A Celery worker also runs it
once when it starts (registry/celery.py), so a restarted worker picks up at once what a
killed one left. :func:`reconcile` finds such work
in the database alone and sends it again. The tasks do nothing when the work is done
already, so sending one too many costs a query.

Services mode: Celery beat runs it every ``WHARF_RECONCILE_SECONDS`` (``make beat``).
Embedded mode: a process runs it in a background thread after other background work, at
most that often (:func:`packages_app.runner.every`). ``manage.py reconcile_indexes`` runs
it once, in any mode.
"""

import logging

from django.db.models import F, Q
from django.utils import timezone

from packages_app import runner
from packages_app.index import repodata
from packages_app.index.bz2_refresh import BZ2_LOST_AFTER, refresh_bz2
from packages_app.index.rebuilds import look_again_after_lease, rebuild_until_current
from packages_app.models import SubdirIndex

log = logging.getLogger(__name__)


def reconcile():
    """Send a rebuild for each subdir whose index is behind its files: now if no live
    lease holds it, else for when the lease lapses (its holder may have died); and a .bz2
    refresh for each one whose refresh was lost.

    Returns ``(rebuilds sent, bz2 refreshes sent)``. One query over the subdir indexes
    finds the candidates (one row per channel, label and subdir, so it stays small).
    """
    now = timezone.now()
    lost_before = now - BZ2_LOST_AFTER
    behind = Q(built_revision__lt=F("requested_revision"))
    bz2_overdue = Q(bz2_due_at__lt=lost_before)
    # Published long enough ago and nothing scheduled: the compression was never sent, or
    # its worker died after taking it. Whether the .bz2 is stale is decided below.
    bz2_unscheduled = Q(bz2_due_at__isnull=True, published_at__lt=lost_before)
    candidates = SubdirIndex.objects.filter(behind | bz2_overdue | bz2_unscheduled).values_list(
        "pk", "channel_id", "subdir", "label", "built_revision", "requested_revision",
        "lease_until", "bz2_due_at", "published_files",
    )  # fmt: skip
    rebuilds = refreshes = 0
    for pk, channel_id, subdir, label, built, requested, lease_until, due, files in candidates:
        if built < requested:
            if lease_until is None or lease_until < now:
                # Its publication schedules the .bz2 as well.
                rebuilds += runner.send(rebuild_until_current, channel_id, subdir, label)
            else:
                rebuilds += look_again_after_lease(pk)
            continue
        if due is None and not _bz2_stale(files):
            continue
        # Claimed, so that the next round does not send it again before it had its chance.
        if SubdirIndex.objects.filter(pk=pk, bz2_due_at=due).update(bz2_due_at=now):
            refreshes += runner.send(refresh_bz2, channel_id, subdir, label)
    if rebuilds or refreshes:
        log.info("reconciler sent %d index rebuilds and %d .bz2 refreshes", rebuilds, refreshes)
    return rebuilds, refreshes


def _bz2_stale(files):
    served = files.get(repodata.REPODATA)
    if served is None:
        return False
    compressed = files.get(repodata.REPODATA_BZ2)
    return compressed is None or compressed.get("source") != served["etag"]
