"""repodata.json.bz2, which follows each published repodata.json in a job of its own.

At 100,000 records bz2 takes seconds of a core and few clients read it, so it is never
part of a rebuild.
"""

import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from packages_app import runner, storage
from packages_app.index import repodata
from packages_app.index.store import forget_if_deleted, index_folder, save
from packages_app.models import MAIN_LABEL, SubdirIndex

# A .bz2 refresh this long past its due time was lost (its job never reached a worker, or
# the worker died): it may be scheduled, and is sent again by the reconciler. A refresh
# that was only slow and runs as well compresses the same file once more, nothing worse.
BZ2_LOST_AFTER = timedelta(seconds=60)


def schedule_bz2(index):
    """Have repodata.json.bz2 follow, at most once per ``WHARF_BZ2_DELAY_SECONDS``.

    One compression is scheduled at a time, and it compresses whatever is served when it
    runs. A subdir without any .bz2 yet gets one at once (it is small, and clients expect
    the file).
    """
    now = timezone.now()
    has_bz2 = repodata.REPODATA_BZ2 in index.published_files
    delay = settings.WHARF_BZ2_DELAY_SECONDS if has_bz2 else 0
    claimed = (
        SubdirIndex.objects.filter(pk=index.pk)
        .filter(Q(bz2_due_at__isnull=True) | Q(bz2_due_at__lt=now - BZ2_LOST_AFTER))
        .update(bz2_due_at=now + timedelta(seconds=delay))
    )
    if not claimed:
        return  # one is due already; it will compress what is served by then
    # If this fails, the due time stays set and the reconciler sends it once overdue.
    runner.send(refresh_bz2, index.channel_id, index.subdir, index.label, countdown=delay)


def refresh_bz2(channel_id, subdir, label=MAIN_LABEL):
    """Compress the served repodata.json to .bz2 unless that is done already.

    Returns the seconds spent compressing, or None when nothing was done.
    """
    found = SubdirIndex.objects.filter(channel_id=channel_id, label=label, subdir=subdir)
    # From here on a new publication schedules a new compression; one published before
    # is read below. (Read first, a publication in between would find a compression due,
    # schedule none, and stay without its .bz2 until the reconciler noticed.)
    found.update(bz2_due_at=None)
    index = found.first()
    if index is None:
        return None
    if repodata.REPODATA not in index.published_files:
        return None
    source = index.published_files[repodata.REPODATA]
    current = index.published_files.get(repodata.REPODATA_BZ2)
    if current and current.get("source") == source["etag"]:
        return None
    started = time.perf_counter()
    try:
        with default_storage.open(source["path"], "rb") as handle:
            compressed = repodata.bz2_compress(handle.read())
    except storage.ERRORS:
        if forget_if_deleted(index):
            return None
        raise
    base = index_folder(channel_id, subdir, label)
    folder = f"{base}/bz2-{int(time.time())}-{uuid.uuid4().hex[:8]}"
    entry = save(folder, repodata.REPODATA_BZ2, compressed)
    entry["source"] = source["etag"]
    with transaction.atomic():
        latest = SubdirIndex.objects.select_for_update().filter(pk=index.pk).first()
        files = latest.published_files if latest is not None else {}
        still_served = files.get(repodata.REPODATA, {}).get("etag") == source["etag"]
        done = files.get(repodata.REPODATA_BZ2, {}).get("source") == source["etag"]
        if still_served and not done:
            files = dict(latest.published_files)
            files[repodata.REPODATA_BZ2] = entry
            SubdirIndex.objects.filter(pk=index.pk).update(published_files=files)
    if latest is None and forget_if_deleted(index):
        return None
    if not still_served or done:
        # Published again meanwhile (that publication scheduled a compression of its own,
        # which may have run already: this older one must not replace it), or another
        # refresh compressed the same document first.
        storage.delete_tree(folder)
        served = files.get(repodata.REPODATA, {}).get("etag")
        if not still_served and files.get(repodata.REPODATA_BZ2, {}).get("source") != served:
            # The newer document has its compression scheduled, or (when its publication
            # found this one due and counted on it) gets it now.
            schedule_bz2(latest)
        return None
    return time.perf_counter() - started
