"""Deleting the temporary files of uploads whose process was killed.

An upload is spooled to ``<temp dir>/wharf-upload-*`` (:mod:`.uploads`) and the file is
deleted however the request ends — unless the process itself dies (SIGKILL, out of
memory, a restarted container with a kept volume). Such a file is found by its name and
age: an upload in progress writes to its file all along, and the longest takes minutes,
far less than ``WHARF_UPLOAD_TEMP_MAX_AGE_SECONDS``. Nothing else in the folder is
touched.

A web process runs it in a background thread after an upload (the upload routes of
:mod:`packages_app.api` call :data:`now_and_then`), at most every
``WHARF_UPLOAD_CLEANUP_SECONDS``: its temporary folder is its own when web processes run
in containers of their own. Celery beat sends it as often, for a folder that workers share
(one host, or a shared volume). ``manage.py clean_uploads`` runs it once, in any mode.
"""

import logging
import os
import tempfile
import time

from django.conf import settings

from packages_app import runner

log = logging.getLogger(__name__)
# Every upload's temporary file is named so (packages_app/intake/uploads.py).
TEMP_PREFIX = "wharf-upload-"


def temp_dir():
    return settings.FILE_UPLOAD_TEMP_DIR or tempfile.gettempdir()


def remove_stale_uploads(max_age=None):
    """Delete upload temporary files not written to for ``max_age`` seconds (default
    ``WHARF_UPLOAD_TEMP_MAX_AGE_SECONDS``); return how many were deleted."""
    max_age = settings.WHARF_UPLOAD_TEMP_MAX_AGE_SECONDS if max_age is None else max_age
    if max_age <= 0:
        return 0
    cutoff = time.time() - max_age
    removed = 0
    with os.scandir(temp_dir()) as entries:
        for entry in entries:
            # Regular files of our own name only: never a link, a folder or anyone else's.
            if not entry.name.startswith(TEMP_PREFIX) or not entry.is_file(follow_symlinks=False):
                continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                    continue
                os.unlink(entry.path)
            except FileNotFoundError:
                continue  # its upload ended meanwhile
            removed += 1
    if removed:
        log.info("deleted %d upload temporary files left by killed processes", removed)
    return removed


now_and_then = runner.NowAndThen(remove_stale_uploads, "WHARF_UPLOAD_CLEANUP_SECONDS")
