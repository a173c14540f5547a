"""Leases that lapse within seconds of their holder's death, and are renewed while it lives.

A rebuild holds its subdir index, an upload the storage object it has not recorded yet.
Each holds a lease: a row that says "mine until <time>". The time is near, ``LEASE``
(``WHARF_LEASE_SECONDS``, 10 s) from the last renewal, and one thread per process, the
keeper, renews every lease the process holds every third of that. A process that is
killed stops renewing, so what it held is free again a few seconds later, whatever the
work would have taken; a process alive but stalled beyond a lease (swapping, a debugger)
loses it too, which is why every holder checks that it still holds its lease when it
commits (the fencing each kind of lease does in its own transaction).

The keeper renews with its own database connection, so a renewal never waits for the
holder's transaction; ``renew`` functions are single UPDATE statements that return
whether the lease was still the holder's.
"""

import itertools
import logging
import os
import threading
import time
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

log = logging.getLogger(__name__)


def seconds():
    """How long a lease lasts from its last renewal."""
    return settings.WHARF_LEASE_SECONDS


def until():
    """The end of a lease taken or renewed now."""
    return timezone.now() + timedelta(seconds=seconds())


class Held:
    """A lease this process holds; ``lost`` once a renewal found it taken or lapsed."""

    def __init__(self, key, renew):
        self.key = key
        self.renew = renew
        self.lost = False
        self.renewed_at = time.monotonic()  # taken just before it is handed over


class Keeper:
    """The thread that renews this process's leases (one per process, started on first
    use and again in a forked child)."""

    def __init__(self):
        self._held = {}  # number -> Held
        self._numbers = itertools.count()
        self._lock = threading.Lock()
        self._pid = None

    def hold(self, key, renew):
        held = Held(key, renew)
        number = next(self._numbers)
        with self._lock:
            self._held[number] = held
            if self._pid != os.getpid():  # never started here (a fork does not copy threads)
                self._pid = os.getpid()
                thread = threading.Thread(target=self._run, name="wharf-lease-keeper", daemon=True)
                thread.start()
        return number, held

    def drop(self, number):
        with self._lock:
            self._held.pop(number, None)

    def holds(self, key):
        """Whether this process holds the lease ``key`` right now."""
        with self._lock:
            return any(held.key == key and not held.lost for held in self._held.values())

    def _run(self):
        while True:
            every = seconds() / 3
            time.sleep(min(every / 2, 1.0))
            now = time.monotonic()
            with self._lock:
                due = [(n, h) for n, h in self._held.items() if now - h.renewed_at >= every]
            for number, held in due:
                self._renew(number, held)

    def _renew(self, number, lease):
        lease.renewed_at = time.monotonic()
        try:
            still = lease.renew()
        except Exception:
            # The database is away: the lease may lapse, and its holder's commit will tell.
            log.warning("could not renew lease %s", lease.key, exc_info=True)
            connection.close()
            return
        if not still:
            lease.lost = True
            self.drop(number)
            log.warning("lease %s was lost before its holder let it go", lease.key)


keeper = Keeper()


@contextmanager
def kept(key, renew):
    """Have the keeper renew a lease (taken already) while the block runs; yields the
    :class:`Held`. ``key`` names it for :func:`held_here`."""
    number, held = keeper.hold(key, renew)
    try:
        yield held
    finally:
        keeper.drop(number)


def held_here(key):
    """Whether a lease ``key`` is held by this process, so its holder is alive."""
    return keeper.holds(key)
