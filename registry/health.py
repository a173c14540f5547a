"""Liveness and readiness for load balancers and orchestrators.

``/healthz`` answers as long as the process does and touches nothing else: a failing
database must not get every web process restarted. ``/readyz`` says whether this process
can do its work now — database, migrations, Redis, storage — and names what is missing,
never how it is reached (no host names, no connection strings).
"""

import logging
import os

from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from registry import broker

log = logging.getLogger(__name__)


class NotReady(Exception):
    pass


def _database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


_migrated = False


def _migrations():
    """Every migration of this code is applied (remembered once true: they stay applied)."""
    global _migrated
    if _migrated:
        return
    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        raise NotReady("migrations are not applied; run manage.py migrate")
    _migrated = True


def _redis():
    broker.ping()


def _cache():
    from django.core.cache import cache

    cache.get("wharf-readiness")  # raises when its Redis cannot be reached


def _storage():
    if isinstance(default_storage, FileSystemStorage):
        # A new installation has stored nothing yet: the folder is made, as a first upload
        # would make it. A read-only one cannot take uploads.
        os.makedirs(default_storage.location, exist_ok=True)
        if not os.access(default_storage.location, os.W_OK):
            raise NotReady("the storage folder is not writable")
    else:
        default_storage.exists("index")  # raises when the bucket cannot be reached


def checks():
    """(name, check) in order; a check raises when what it names is not ready."""
    found = [("database", _database), ("migrations", _migrations)]
    if settings.REDIS_URL:
        found.append(("redis", _redis))
    if settings.WHARF_CACHE_URL and settings.WHARF_CACHE_URL != settings.REDIS_URL:
        found.append(("cache", _cache))
    found.append(("storage", _storage))
    return found


def readiness():
    """``(ready, {check: "ok" | "failed" | "skipped"})``."""
    results = {}
    for name, check in checks():
        if name == "migrations" and results["database"] != "ok":
            results[name] = "skipped"
            continue
        try:
            check()
        except Exception as exc:
            # Probes come every few seconds: one line, no traceback.
            log.warning("not ready: %s check failed: %s", name, exc)
            results[name] = "failed"
        else:
            results[name] = "ok"
    return all(result == "ok" for result in results.values()), results
