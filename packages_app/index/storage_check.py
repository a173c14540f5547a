"""Comparing the database with the stored files: after a restore from backup, after a
crash, or to be sure (``manage.py check_storage``).

- A package file whose row exists but whose stored object is missing or of another size
  is reported: clients would get an error for it. Only the operator can bring the bytes
  back (from a backup) or delete the row.
- A published index file that is missing makes its subdir rebuild from the database (a
  missing repodata.json.bz2 only its compression).
- A stored object under ``packages/`` that no row refers to is an orphan, unless it is
  staged (an upload or import still writing it, or one the sweep deletes within seconds:
  packages_app/staging.py). Objects younger than ``orphan_grace`` are left alone too:
  an upload may have stored an object between the listing and the reading of rows.

The stored objects are listed once (one flat listing per prefix on S3, a directory walk
on the file system) rather than asked about one by one.
"""

import os
import time
from dataclasses import dataclass, field

from django.core.files.storage import default_storage
from django.db import transaction

from packages_app import runner, storage
from packages_app.index import rebuilds, repodata
from packages_app.index.bz2_refresh import refresh_bz2
from packages_app.models import PackageFile, StagedFile, SubdirIndex

PACKAGES = "packages"
INDEXES = "index"


@dataclass
class StorageReport:
    files_checked: int = 0
    missing: list = field(default_factory=list)  # "channel/subdir/filename: why"
    orphans: list = field(default_factory=list)  # storage paths
    orphans_deleted: int = 0
    stale_indexes: list = field(default_factory=list)  # "channel/subdir"

    @property
    def clean(self):
        return not (self.missing or self.orphans or self.stale_indexes)


def check_storage(*, channel=None, delete_orphans=False, orphan_grace=3600):
    """Check ``channel`` (or every channel); rebuild indexes whose files are missing."""
    report = StorageReport()
    packages_prefix = f"{PACKAGES}/{channel.pk}" if channel else PACKAGES
    stored = stored_objects(packages_prefix)
    rows = PackageFile.objects.select_related("channel").only(
        "channel__name", "subdir", "filename", "storage_path", "size"
    )
    if channel:
        rows = rows.filter(channel=channel)
    referenced = set()
    for row in rows.iterator(chunk_size=2000):
        report.files_checked += 1
        referenced.add(row.storage_path)
        found = stored.get(row.storage_path)
        where = f"{row.channel.name}/{row.subdir}/{row.filename}"
        if found is None:
            report.missing.append(f"{where}: no stored object at {row.storage_path}")
        elif found[0] != row.size:
            report.missing.append(f"{where}: {found[0]} bytes stored, {row.size} recorded")

    cutoff = time.time() - orphan_grace
    # Objects a writer staged, or a delete left to delete, are the sweep's
    # (packages_app/staging.py): in progress, or gone within seconds of their lease.
    staged = set(StagedFile.objects.values_list("storage_path", flat=True))
    for path, (_, modified) in sorted(stored.items()):
        if path not in referenced and path not in staged and modified < cutoff:
            report.orphans.append(path)
    # A row committed after the listing above refers to an object listed as an orphan:
    # look again before deleting.
    if delete_orphans and report.orphans:
        still = set(report.orphans) - set(
            PackageFile.objects.filter(storage_path__in=report.orphans).values_list(
                "storage_path", flat=True
            )
        )
        for path in sorted(still):
            default_storage.delete(path)
            storage.remove_empty_local_folder(path.rsplit("/", 1)[0])
            report.orphans_deleted += 1

    index_prefix = f"{INDEXES}/{channel.pk}" if channel else INDEXES
    published = stored_objects(index_prefix)
    indexes = SubdirIndex.objects.select_related("channel").filter(built_revision__gte=0)
    if channel:
        indexes = indexes.filter(channel=channel)
    for index in indexes:
        files = index.published_files or {}
        missing = {name for name, entry in files.items() if entry["path"] not in published}
        if files and repodata.CURRENT_REPODATA not in files:
            missing.add(repodata.CURRENT_REPODATA)  # published before it was; rebuilt now
        if files and not missing:
            continue
        report.stale_indexes.append(str(index))
        with transaction.atomic():
            if repodata.REPODATA_BZ2 in missing:
                # Served as missing until compressed again; a rebuild schedules that too.
                latest = SubdirIndex.objects.select_for_update().get(pk=index.pk)
                kept = dict(latest.published_files)
                kept.pop(repodata.REPODATA_BZ2, None)
                SubdirIndex.objects.filter(pk=index.pk).update(published_files=kept)
            if not files or missing - {repodata.REPODATA_BZ2}:
                rebuilds.request_rebuild(index.channel, index.subdir, label=index.label, full=True)
            else:
                transaction.on_commit(
                    lambda index=index: runner.send(
                        refresh_bz2, index.channel_id, index.subdir, index.label
                    )
                )
    return report


def stored_objects(prefix):
    """{path: (size, modified epoch seconds)} for every stored object below ``prefix``."""
    if storage.in_bucket():  # one paginated listing, not one request per folder
        bucket = default_storage.bucket
        location = default_storage.location.strip("/")
        full = f"{location}/{prefix}/" if location else f"{prefix}/"
        skip = len(location) + 1 if location else 0
        return {
            item.key[skip:]: (item.size, item.last_modified.timestamp())
            for item in bucket.objects.filter(Prefix=full)
        }
    try:
        root = default_storage.path(prefix)
    except NotImplementedError:
        return _listed(prefix)
    found = {}
    base = default_storage.path("")
    for folder, _, names in os.walk(root):
        for name in names:
            full = os.path.join(folder, name)
            info = os.stat(full)
            relative = os.path.relpath(full, base).replace(os.sep, "/")
            found[relative] = (info.st_size, info.st_mtime)
    return found


def _listed(prefix):
    """Any other storage: walk with listdir()."""
    found = {}
    try:
        folders, names = default_storage.listdir(prefix)
    except (FileNotFoundError, OSError):
        return found
    for name in names:
        path = f"{prefix}/{name}"
        found[path] = (
            default_storage.size(path),
            default_storage.get_modified_time(path).timestamp(),
        )
    for folder in folders:
        found.update(_listed(f"{prefix}/{folder}"))
    return found
