"""Importing many package files at once (existing channel directories, benchmarks).

Every file is checked exactly as an upload is. Archives are inspected in parallel
processes; files are stored and recorded in batches, one transaction per batch, and the
index is rebuilt once at the end instead of once per file. Files that are already in the
channel are skipped, so an interrupted import can simply be run again.
"""

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from django.db import transaction

from . import archives, catalog, indexing, uploads
from .models import PackageFile

log = logging.getLogger(__name__)


@dataclass
class ImportResult:
    imported: int = 0
    skipped: int = 0
    refused: dict = field(default_factory=dict)  # path -> reason


def _inspect(path):
    """Runs in a worker process: hash and check one file."""
    received = uploads.ReceivedFile.from_path(path)
    try:
        metadata = archives.inspect_package(received.path, received.filename)
    except archives.InvalidPackage as exc:
        return received, None, str(exc)
    return received, metadata, None


def import_files(channel, paths, uploader=None, *, batch_size=500, workers=None, progress=None):
    """Import package files into ``channel``; ``progress(done, total)`` is called per batch."""
    paths = [str(p) for p in paths]
    result = ImportResult()
    subdirs = set()
    workers = workers or os.cpu_count() or 1
    # Starting processes costs more than checking a handful of files.
    pool = ProcessPoolExecutor(workers) if len(paths) > 4 * workers else None
    try:
        for start in range(0, len(paths), batch_size):
            batch = paths[start : start + batch_size]
            if pool is None:
                inspected = [_inspect(path) for path in batch]
            else:
                chunk = max(1, batch_size // workers)
                inspected = list(pool.map(_inspect, batch, chunksize=chunk))
            subdirs |= _store_batch(channel, inspected, uploader, result)
            if progress:
                progress(min(start + batch_size, len(paths)), len(paths))
    finally:
        if pool is not None:
            pool.shutdown()
    with transaction.atomic():
        for subdir in subdirs:
            indexing.enqueue_rebuild(channel.pk, subdir)
    return result


def _store_batch(channel, inspected, uploader, result):
    accepted = []
    for received, metadata, problem in inspected:
        if problem:
            result.refused[received.path] = problem
        else:
            accepted.append((received, metadata))
    existing = set(
        PackageFile.objects.filter(
            channel=channel, filename__in=[r.filename for r, _ in accepted]
        ).values_list("subdir", "filename")
    )
    fresh = []
    for received, metadata in accepted:
        key = (metadata.subdir, received.filename)
        if key not in existing:
            existing.add(key)  # the same file twice in one import counts once
            fresh.append((received, metadata))
    result.skipped += len(accepted) - len(fresh)
    stored = []
    try:
        for received, metadata in fresh:
            stored.append(uploads.store_bytes(channel, metadata.subdir, received))
        rows = [
            PackageFile(
                channel=channel,
                subdir=metadata.subdir,
                filename=received.filename,
                **uploads.package_file_fields(received, metadata, path, uploader),
            )
            for (received, metadata), path in zip(fresh, stored, strict=True)
        ]
        by_subdir = {}
        for _, metadata in fresh:
            by_subdir.setdefault(metadata.subdir, set()).add(metadata.name)
        with transaction.atomic():
            PackageFile.objects.bulk_create(rows, batch_size=1000)
            for subdir, names in by_subdir.items():
                indexing.request_rebuild(channel, subdir, names, enqueue=False)
            catalog.refresh(channel, {metadata.name for _, metadata in fresh})
    except BaseException:
        for path in stored:
            uploads.release_storage(path)
        raise
    result.imported += len(rows)
    return set(by_subdir)
