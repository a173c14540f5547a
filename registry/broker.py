"""The Redis broker as web processes see it: whether it answers, and how much waits in it.

Kept apart from registry/celery.py (the Celery app and its worker signals, which use
registry/metrics.py) so that readiness and metrics read Redis without importing the app.
"""

import functools

import redis
from django.conf import settings

# kombu's Redis transport keeps a queue's messages of priority 3, 6 and 9 in lists of their
# own, named "<queue>\x06\x16<priority>".
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


@functools.cache
def _client():
    return redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2, health_check_interval=30
    )


def ping():
    """Raise unless the Redis broker answers."""
    _client().ping()


def queued_tasks():
    """{queue name: messages waiting} for the default queue, read from Redis."""
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    pipeline = _client().pipeline(transaction=False)
    for suffix in _PRIORITY_SUFFIXES:
        pipeline.llen(queue + suffix)
    return {queue: sum(pipeline.execute())}
