"""Celery entry points. Each is safe to run twice and to be delivered again after its
worker died (late acknowledgement): it re-reads the database and does what is missing."""

import logging

from celery import shared_task

from . import cleanup, indexing, reconcile, statistics
from .models import MAIN_LABEL

log = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=10)
def rebuild_subdir_index(self, channel_id, subdir, label=MAIN_LABEL):
    """Bring the (channel, label, subdir) index up to date; a no-op when it already is."""
    try:
        return indexing.rebuild_until_current(
            channel_id, subdir, owner=self.request.id, label=label
        )
    except Exception as exc:
        if self.request.is_eager:
            # Embedded mode runs this inside the request that changed the subdir; the change
            # is committed, so the request must not fail. The next change, the reconciler
            # or a reindex request publishes it.
            log.exception("index rebuild of %s/%s (label %s) failed", channel_id, subdir, label)
            return 0
        # After the last retry the reconciler sends it again.
        raise self.retry(exc=exc, countdown=min(2**self.request.retries, 60)) from exc


@shared_task(acks_late=True, ignore_result=True)
def refresh_bz2_task(channel_id, subdir, label=MAIN_LABEL):
    """Bring repodata.json.bz2 in line with the served repodata.json."""
    return indexing.refresh_bz2(channel_id, subdir, label)


@shared_task(ignore_result=True)
def reconcile_indexes():
    """Send again the index work that was requested but never done (Celery beat)."""
    return reconcile.reconcile()


@shared_task(ignore_result=True)
def clean_uploads():
    """Delete upload temporary files that killed processes left behind (Celery beat)."""
    return cleanup.remove_stale_uploads()


@shared_task(ignore_result=True)
def flush_download_counts():
    """Move the download counts buffered in Redis into the database (Celery beat)."""
    return statistics.flush()
