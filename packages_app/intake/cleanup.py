"""Reclaiming what killed processes left behind: upload temporary files, stored objects.

An upload is spooled to ``<temp dir>/wharf-upload-*`` (:mod:`.uploads`), and the process
writing it holds a lock on the file (``flock``) until the file is deleted, however the
request ends. A process that dies (SIGKILL, out of memory, a restarted container with a
kept volume) drops its locks with it: a file of our name that nobody has locked is a
leftover, whatever its age. Nothing else in the folder is touched. Objects stored by a
killed upload or import before their rows committed are recorded and deleted by
:func:`packages_app.staging.sweep`.

:func:`reclaim` does both. It runs when a process starts (a web process at its first
request, a Celery worker once ready), then at most every ``WHARF_UPLOAD_CLEANUP_SECONDS``:
after uploads in web processes (their temporary folder is their own when they run in
containers of their own) and from Celery beat for a folder workers share.
``manage.py clean_uploads`` runs it once, in any mode.
"""

import contextlib
import fcntl
import logging
import os
import tempfile
import time

from django.conf import settings

from packages_app import runner, staging

log = logging.getLogger(__name__)
# Every upload's temporary file is named so (packages_app/intake/uploads.py).
TEMP_PREFIX = "wharf-upload-"
# Between creating its file and locking it a writer needs microseconds; a file younger
# than this is left alone even when unlocked.
GRACE_SECONDS = 2


def temp_dir():
    return settings.FILE_UPLOAD_TEMP_DIR or tempfile.gettempdir()


def hold(path):
    """Lock the temporary file at ``path`` for as long as the returned handle is open."""
    handle = open(path, "rb")  # noqa: SIM115 - closed by its owner (ReceivedFile.discard)
    fcntl.flock(handle, fcntl.LOCK_SH)
    return handle


def remove_abandoned_files():
    """Delete upload temporary files that no living process holds; return how many."""
    removed = 0
    young = time.time() - GRACE_SECONDS
    with os.scandir(temp_dir()) as entries:
        for entry in entries:
            # Regular files of our own name only: never a link, a folder or anyone else's.
            if not entry.name.startswith(TEMP_PREFIX) or not entry.is_file(follow_symlinks=False):
                continue
            removed += _remove_if_abandoned(entry.path, young)
    if removed:
        log.info("deleted %d upload temporary files left by killed processes", removed)
    return removed


def _remove_if_abandoned(path, young):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return 0  # its upload ended meanwhile, or it is not a plain file after all
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # an upload in progress
        if os.fstat(fd).st_mtime >= young:
            return 0
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            return 1
        return 0
    finally:
        os.close(fd)


def reclaim():
    """Delete abandoned upload temporary files and the stored objects killed processes
    left unrecorded; return ``(files, objects)`` deleted."""
    return remove_abandoned_files(), staging.sweep()


def reclaim_at_start():
    """:func:`reclaim` now, and once more when the leases held now have lapsed: a process
    killed just before this one started still held its objects' leases."""
    reclaim()
    lapse = staging.seconds_until_held_lapse()
    if lapse is not None:
        runner.in_background(reclaim, delay=lapse + 1)


now_and_then = runner.NowAndThen(reclaim, "WHARF_UPLOAD_CLEANUP_SECONDS")
