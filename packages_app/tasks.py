"""Celery entry points, thin: each runs one domain function on a worker. Each is safe to
run twice and to be delivered again after its worker died (late acknowledgement): it
re-reads the database and does what is missing.

Domain code never sends these itself: it hands its own function to
:func:`packages_app.runner.send`, and :func:`register` (called from
``PackagesAppConfig.ready``) tells the runner which task runs which function.
"""

import logging

from celery import shared_task
from django.conf import settings

from packages_app import runner
from packages_app.combined import cache as combined_cache
from packages_app.conda import statistics
from packages_app.index import bz2_refresh, rebuilds, reconcile
from packages_app.intake import cleanup
from packages_app.models import MAIN_LABEL
from packages_app.upstream import mirror, refresh

log = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=10)
def rebuild_subdir_index(self, channel_id, subdir, label=MAIN_LABEL):
    """Bring the (channel, label, subdir) index up to date; a no-op when it already is."""
    try:
        return rebuilds.rebuild_until_current(channel_id, subdir, label, owner=self.request.id)
    except Exception as exc:
        # After the last retry the reconciler sends it again.
        raise self.retry(exc=exc, countdown=min(2**self.request.retries, 60)) from exc


@shared_task(acks_late=True, ignore_result=True)
def refresh_bz2_task(channel_id, subdir, label=MAIN_LABEL):
    """Bring repodata.json.bz2 in line with the served repodata.json."""
    return bz2_refresh.refresh_bz2(channel_id, subdir, label)


@shared_task(acks_late=True, ignore_result=True)
def refresh_upstream_subdir(channel_id, subdir):
    """Bring a proxy channel's copy of an upstream subdir index up to date."""
    return refresh.refresh_subdir(channel_id, subdir)


@shared_task(
    ignore_result=True,
    acks_late=False,
    soft_time_limit=settings.WHARF_MIRROR_RUN_SECONDS,
    time_limit=settings.WHARF_MIRROR_RUN_SECONDS + 300,
)
def run_mirror(channel_id, trigger=None, user_id=None):
    """A mirror run (acknowledged when taken: a run killed with its worker is resumed by
    the next round of start_due_mirrors, not by a redelivery an hour later)."""
    if trigger is None:
        return mirror.run_scheduled(channel_id)
    return mirror.run_in_background(channel_id, trigger, user_id)


@shared_task(ignore_result=True)
def start_due_mirrors():
    """Start the mirror runs that are due, resume interrupted ones (Celery beat)."""
    return mirror.due_mirrors()


@shared_task(ignore_result=True)
def reconcile_indexes():
    """Send again the index work that was requested but never done (Celery beat)."""
    return reconcile.reconcile()


@shared_task(ignore_result=True)
def clean_uploads():
    """Delete upload temporary files and stored objects that killed processes left
    behind (Celery beat)."""
    return cleanup.reclaim()


@shared_task(ignore_result=True)
def flush_download_counts():
    """Move the download counts buffered in Redis into the database (Celery beat)."""
    return statistics.flush()


@shared_task(acks_late=True, ignore_result=True)
def build_combined_documents(entry_id, owner, member_ids):
    """Build repodata.json (and the files made from it) of a combined channel's entry."""
    return combined_cache.build_documents(entry_id, owner, member_ids)


def register():
    """Tell the runner which task runs which domain function on a worker."""
    runner.register(rebuilds.rebuild_until_current, rebuild_subdir_index)
    # On a worker a rebuild's .bz2 follows in a task of its own.
    runner.register(rebuilds.rebuild_now, rebuild_subdir_index)
    runner.register(bz2_refresh.refresh_bz2, refresh_bz2_task)
    runner.register(refresh.refresh_subdir, refresh_upstream_subdir)
    runner.register(combined_cache.build_documents, build_combined_documents)
    runner.register(mirror.run_scheduled, run_mirror)
    runner.register(mirror.run_in_background, run_mirror)
    # Sent by Celery beat in services mode; in embedded mode after other work.
    runner.every(reconcile.reconcile, "WHARF_RECONCILE_SECONDS")
    runner.every(mirror.due_mirrors, "WHARF_RECONCILE_SECONDS")
    # A process that starts picks up at once what a killed one left: its index work, its
    # temporary files, the objects it stored without recording them.
    runner.at_start(reconcile.reconcile)
    runner.at_start(cleanup.reclaim_at_start)
