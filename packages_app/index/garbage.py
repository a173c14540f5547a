"""Deleting published index folders that nothing serves any more."""

import time

from django.conf import settings
from django.core.files.storage import default_storage

from packages_app import storage
from packages_app.index import repodata
from packages_app.index.store import index_folder

# A .bz2 folder younger than this may still be being written: garbage collection waits.
BZ2_GRACE_SECONDS = 600


def collect_garbage(index):
    """Delete published folders that nothing serves any more; call under the lease.

    The folder published just before is kept, and so is every folder replaced less than
    ``WHARF_RETIRED_INDEX_SECONDS`` ago: a request (or nginx, after X-Accel-Redirect) may
    have looked one up and not opened its file yet. Under a stream of uploads rebuilds
    follow each other within milliseconds, so "the one before" alone is not enough.
    A .bz2 folder is written outside the lease, so one is deleted only when it is old
    enough not to be one that is still being written.
    """
    index.refresh_from_db()
    keep = {index.published_path, index.previous_path}
    keep |= {entry["path"].rsplit("/", 1)[0] for entry in index.published_files.values()}
    base = index_folder(index.channel_id, index.subdir, index.label)
    try:
        folders, _ = default_storage.listdir(base)
    except storage.ERRORS:
        return
    now = time.time()
    bz2_cutoff = now - BZ2_GRACE_SECONDS
    retired = _retired_since(base, [f for f in folders if f.startswith("r")])
    for folder in folders:
        path = f"{base}/{folder}"
        if path in keep:
            continue
        if folder.startswith("r"):
            if now - retired.get(folder, 0) >= settings.WHARF_RETIRED_INDEX_SECONDS:
                storage.delete_tree(path)
        elif folder.startswith("bz2-") and int(folder.split("-")[1]) < bz2_cutoff:
            storage.delete_tree(path)


def _retired_since(base, folders):
    """{folder: when it stopped being served} for revision folders ("r<revision>-...").

    A folder stopped being served when the next newer one was published; that one's
    repodata.json was written just before, so its modification time stands for it.
    """
    if settings.WHARF_RETIRED_INDEX_SECONDS <= 0:
        return {}

    def revision(folder):
        try:
            return int(folder[1:].split("-")[0])
        except ValueError:
            return -1

    ordered = sorted(folders, key=revision)
    retired = {}
    for older, newer in zip(ordered, ordered[1:], strict=False):
        try:
            modified = default_storage.get_modified_time(f"{base}/{newer}/{repodata.REPODATA}")
        except storage.ERRORS:
            continue  # being written or deleted: its predecessor waits for the next round
        retired[older] = modified.timestamp()
    return retired
