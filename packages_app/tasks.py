from celery import shared_task

from . import indexing


@shared_task(acks_late=True, ignore_result=True)
def rebuild_subdir_index(channel_id, subdir):
    """Bring the (channel, subdir) index up to date; a no-op when it already is."""
    return indexing.rebuild_until_current(channel_id, subdir)
