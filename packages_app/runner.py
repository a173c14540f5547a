"""Work that runs in the background, sent one way from every part of Wharf.

Domain code calls :func:`send` with one of its own functions and the function's
arguments; it never names a Celery task and never asks which mode Wharf runs in.
:mod:`packages_app.tasks` registers, for each such function, the Celery task that runs it
on a worker (:func:`register`, called from ``PackagesAppConfig.ready``).

- Services mode (``REDIS_URL`` set): the registered task is sent to the workers, after
  ``countdown`` seconds if given. A broker that cannot be reached is logged, not raised:
  everything a task does is recorded in the database before it is sent, so the
  reconciler finds lost work there and sends it again.
- Embedded mode: the function runs here, at once, or in a thread after ``countdown``
  seconds. The periodic work that Celery beat sends in services mode (registered with
  :func:`every`) runs now and then after such work instead.

Threads are started here only (:func:`in_background`), so that tests and orderly
shutdowns can wait for them (:func:`wait_for_background_work`), and a process about to
end (a management command) can finish them first (:func:`finish_background_work`).
"""

import logging
import threading
import time

from django.conf import settings
from django.db import connection

log = logging.getLogger(__name__)
_tasks = {}  # function -> the Celery task that runs it on a worker
_periodic = []  # NowAndThen of each periodic function, run after work in embedded mode
_at_start = []  # functions run in the background when a process starts (see starting)
background_threads = []
_threads_lock = threading.Lock()  # a listed thread has been started
_ending = threading.Event()  # set: delayed work runs now (finish_background_work)


def register(function, task):
    """Have ``task`` run ``function`` on a worker (services mode)."""
    _tasks[function] = task


def every(function, seconds_setting):
    """``function`` is periodic work (Celery beat sends it every ``seconds_setting``
    seconds in services mode); in embedded mode it runs in a thread after other work, at
    most that often."""
    _periodic.append(NowAndThen(function, seconds_setting))


def at_start(function):
    """Run ``function`` in the background whenever a process starts serving: a web
    worker (gunicorn's ``post_worker_init``), a Celery worker (``worker_ready``)."""
    _at_start.append(function)


def starting():
    """This process starts serving: run what :func:`at_start` registered (in threads)."""
    for function in _at_start:
        in_background(function)


def periodic(function):
    """The :class:`NowAndThen` that runs periodic ``function`` in embedded mode."""
    return next(job for job in _periodic if job.function is function)


def _embedded():
    return settings.CELERY_TASK_ALWAYS_EAGER


def send(function, *args, countdown=None, detached=False):
    """Run ``function(*args)`` in the background; False when that could not be started.

    Failures are logged, never raised: the caller's change is committed already. In
    embedded mode work without a ``countdown`` runs here, at once, unless ``detached``
    (the caller must not wait for it: it runs in a thread).
    """
    if _embedded():
        if countdown or detached:
            in_background(function, *args, delay=countdown or 0)
            return True
        try:
            function(*args)
        except Exception:
            log.exception("%s%s failed", function.__qualname__, args)
            return False
        finally:
            for periodic in _periodic:
                periodic()
        return True
    task = _tasks[function]
    try:
        task.apply_async(args, countdown=countdown)
    except Exception:
        log.exception("could not send %s%s", task.name, args)
        return False
    return True


def in_background(function, *args, delay=0):
    """Run ``function(*args)`` in a thread of this process after ``delay`` seconds."""
    thread = threading.Thread(target=_in_background, args=(delay, function, *args))
    thread.daemon = True
    with _threads_lock:
        background_threads.append(thread)
        thread.start()


def _in_background(delay, function, *args):
    try:
        _ending.wait(delay)
        function(*args)
    except Exception:
        log.exception("%s%s failed", function.__name__, args)
    finally:
        connection.close()
        with _threads_lock:
            background_threads.remove(threading.current_thread())


class NowAndThen:
    """Call to run ``function`` in a background thread, unless this process started it in
    the last ``seconds_setting`` seconds (0: never)."""

    def __init__(self, function, seconds_setting):
        self.function = function
        self.seconds_setting = seconds_setting
        self.last_run = None
        self._lock = threading.Lock()

    def __call__(self):
        seconds = getattr(settings, self.seconds_setting)
        if seconds <= 0:
            return
        with self._lock:
            now = time.monotonic()
            if self.last_run is not None and now - self.last_run < seconds:
                return
            self.last_run = now
        in_background(self.function)


def wait_for_background_work(timeout=60):
    """Wait for work started in threads (tests, commands, orderly shutdown)."""
    with _threads_lock:
        threads = list(background_threads)
    for thread in threads:
        thread.join(timeout)


def finish_background_work(timeout=60):
    """Run delayed work now and wait until no background work is left, at most
    ``timeout`` seconds: for a process about to end, whose daemon threads would die with
    it — an index rebuild among them would leave its subdir unpublished until another
    process took over its lapsed lease."""
    deadline = time.monotonic() + timeout
    _ending.set()
    try:
        while background_threads and time.monotonic() < deadline:
            wait_for_background_work(max(0.0, deadline - time.monotonic()))
    finally:
        _ending.clear()
