"""A proxy channel's copy of an upstream subdir index, fetched and refreshed.

:func:`refresh_subdir` asks the upstream for ``<subdir>/repodata.json`` (conditionally,
with the validators of the copy it has), and on a new document publishes Wharf's own set
of index files from it — repodata.json, .zst, the CEP-16 shard index and shards,
current_repodata.json — exactly as a hosted channel's are published (same storage layout,
same ``SubdirIndex`` row, so the conda routes serve them unchanged). Only the shards of
names whose records changed are written. It runs under the subdir's index lease, so one
refresh at a time runs per subdir across all processes; a killed one's lease lapses in
seconds.

The published repodata.json has no ``base_url``: clients fetch package files from Wharf,
which fetches them from the upstream (:mod:`.files`) — its credentials never leave Wharf.
"""

import logging
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import orjson
from django.db import transaction
from django.utils import timezone

from channels_app.models import Channel, Upstream
from packages_app import leases, storage
from packages_app.index import repodata
from packages_app.index.bz2_refresh import schedule_bz2
from packages_app.index.garbage import collect_garbage
from packages_app.index.publishing import NO_FILES
from packages_app.index.rebuilds import release_lease, renew_lease, take_lease
from packages_app.index.records import record_sets
from packages_app.index.store import index_folder, save_index_files, save_shard
from packages_app.models import MAIN_LABEL, SubdirIndex, SubdirPackage, UpstreamSubdir
from registry import metrics

from . import client

log = logging.getLogger(__name__)
# A proxy writes every shard of a subdir at once. On a shard of 19 builds level 3 took
# a thirteenth of the time of the hosted channels' level 16, for 1,293 bytes against 1,304
# (measured 2026-12-05, 2,000 shards; the first copy at 100k records: 11.9 s -> 8.6 s).
PROXY_SHARD_LEVEL = 3


def subdir_state(channel, subdir):
    """The (SubdirIndex, UpstreamSubdir) of a proxied subdir, created when first asked."""
    index, _ = SubdirIndex.objects.get_or_create(channel=channel, label=MAIN_LABEL, subdir=subdir)
    state, _ = UpstreamSubdir.objects.get_or_create(index=index)
    return index, state


def refresh_subdir(channel_id, subdir):
    """Bring the copy of the upstream's ``subdir`` up to date; return what happened
    (``"new"``, ``"unchanged"``, ``"missing"``, ``"busy"``, ``"failed"``)."""
    channel = Channel.objects.select_related("upstream").filter(pk=channel_id).first()
    if channel is None or not hasattr(channel, "upstream"):
        return None
    index, state = subdir_state(channel, subdir)
    owner = f"proxy-{uuid.uuid4().hex[:12]}"
    if not take_lease(index.pk, owner):
        return "busy"
    try:
        with leases.kept(("index", index.pk), lambda: renew_lease(index.pk, owner)):
            outcome = _refresh(channel, channel.upstream, index, state, owner)
    except (client.UpstreamError, OSError, ValueError, orjson.JSONDecodeError) as exc:
        _failed(channel, state, exc)
        outcome = "failed"
    finally:
        release_lease(index.pk, owner)
        UpstreamSubdir.objects.filter(pk=state.pk).update(refresh_sent_at=None)
    return outcome


def _refresh(channel, upstream, index, state, owner):
    started = time.perf_counter()
    headers = {"Accept-Encoding": "gzip"}
    if state.etag and index.published_files:
        headers["If-None-Match"] = state.etag
    if state.last_modified and index.published_files:
        headers["If-Modified-Since"] = state.last_modified
    path = f"{index.subdir}/repodata.json"
    response = client.get(upstream, path, headers)
    now = timezone.now()
    if response.status == 304:
        _answered(upstream, state, now)
        return "unchanged"
    if response.status == 404:
        # No such subdir upstream: served as an empty one, as a hosted channel's.
        record_sets.take(index.pk)
        _publish(channel, index, owner, repodata.RecordSet(index.subdir), set())
        _answered(upstream, state, now, etag="", last_modified="")
        return "missing"
    if response.status != 200:
        raise client.UpstreamError(
            f"{upstream.url}/{path} answered HTTP {response.status}.",
            status=response.status,
        )
    validators = {
        "etag": response.headers.get("ETag", ""),
        "last_modified": response.headers.get("Last-Modified", ""),
    }
    by_name, removed, base_url = _read(response)
    del response  # its body: hundreds of MB at conda-forge's size
    _, before = record_sets.take(index.pk)
    records, changed = _update(before, index.subdir, by_name, removed)
    del by_name
    written = _publish(channel, index, owner, records, changed)
    _answered(upstream, state, now, base_url=base_url, **validators)
    seconds = time.perf_counter() - started
    metrics.INDEX_REBUILD_SECONDS.observe(seconds)
    log.info(
        "proxy %s/%s refreshed from %s: %d records, %d shards written, %.3f s",
        channel.name, index.subdir, upstream.url, len(records), written, seconds,
        extra={"channel": channel.name, "subdir": index.subdir, "records": len(records)},
    )  # fmt: skip
    return "new"


def _read(response):
    """The upstream document's records as {name: {filename: record JSON}}, its removed
    file names and its info.base_url."""
    document = orjson.loads(response.data)
    if not isinstance(document, dict):
        raise ValueError("the upstream's repodata.json is not a JSON object")
    by_name = {}
    for key in (repodata.TAR_BZ2_KEY, repodata.CONDA_KEY):
        for filename, record in (document.get(key) or {}).items():
            if isinstance(record, dict) and isinstance(record.get("name"), str):
                by_name.setdefault(record["name"], {})[filename] = repodata.record_json(record)
    removed = sorted(str(name) for name in document.get("removed") or ())
    info = document.get("info") or {}
    return by_name, removed, str(info.get("base_url") or "")


def _fragment(filename, record_json):
    return orjson.dumps(filename) + b":" + record_json.encode()


def _update(before, subdir, by_name, removed):
    """The records of the new document and the names whose records changed: ``before``
    (the copy this process built last, or None) updated where the names changed, so that
    what it keeps per unchanged name (current_repodata's choice) is kept too."""
    if before is None:
        records, changed = repodata.RecordSet(subdir), set(by_name)
    else:
        records = before
        changed = set(records.names) - set(by_name)  # names the upstream no longer has
        for name, files in by_name.items():
            held = records.names.get(name)
            if (
                held is None
                or len(held) != len(files)
                or any(records.fragments.get(f) != _fragment(f, j) for f, j in files.items())
            ):
                changed.add(name)
    rows = sorted(
        (filename, name, record_json, False)
        for name in changed
        for filename, record_json in by_name.get(name, {}).items()
    )
    records.replace_names(changed if before is not None else (), rows)
    records.removed = removed
    return records, changed


def _publish(channel, index, owner, records, changed):
    """Write the shards of ``changed`` names (of every name whose shard is not known) and
    the index files; switch the index to them. Returns how many shards were written."""
    revision = index.built_revision + 1
    known = dict(SubdirPackage.objects.filter(index=index).values_list("name", "shard_sha256"))
    digests, stale = {}, []
    for name in records.names:
        if name not in changed and known.get(name, NO_FILES) != NO_FILES:
            digests[name] = known[name]
        else:
            stale.append(name)
    # Compressing and storing shards releases the GIL: a first copy's 25,000 shards are
    # written by as many threads as there are cores.
    local = threading.local()

    def write(name):
        if not hasattr(local, "compressor"):
            local.compressor = repodata.shard_compressor(PROXY_SHARD_LEVEL)
        return name, *save_shard(channel.pk, index.subdir, records, name, local.compressor)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        done = list(pool.map(write, stale))
    rows, written = [], 0
    for name, digest, fresh in done:
        digests[name] = digest
        written += fresh
        rows.append(
            SubdirPackage(index=index, name=name, changed_revision=revision, shard_sha256=digest)
        )

    folder = f"{index_folder(channel.pk, index.subdir)}/r{revision}-{uuid.uuid4().hex[:8]}"
    published = save_index_files(folder, index.subdir, records, digests)
    if repodata.REPODATA_BZ2 in index.published_files:
        # Served until the new document's compression (scheduled below) replaces it.
        published[repodata.REPODATA_BZ2] = index.published_files[repodata.REPODATA_BZ2]
    with transaction.atomic():
        switched = SubdirIndex.objects.filter(pk=index.pk, lease_owner=owner).update(
            published_path=folder,
            previous_path=index.published_path,
            published_files=published,
            published_at=timezone.now(),
            built_revision=revision,
            requested_revision=revision,
        )
        if switched:
            gone = set(known) - set(records.names)
            SubdirPackage.objects.filter(index=index, name__in=gone).delete()
            SubdirPackage.objects.bulk_create(
                rows, batch_size=2000, update_conflicts=True,
                unique_fields=["index", "name"],
                update_fields=["changed_revision", "shard_sha256"],
            )  # fmt: skip
    if not switched:
        storage.delete_tree(folder)
        raise client.UpstreamError("the refresh lost its lease before publishing")
    record_sets.put(index.pk, revision, records)
    index.refresh_from_db()
    collect_garbage(index)
    schedule_bz2(index)
    return written


def _answered(upstream, state, now, **validators):
    UpstreamSubdir.objects.filter(pk=state.pk).update(
        checked_at=now, error="", error_at=None, **validators
    )
    Upstream.objects.filter(pk=upstream.pk).update(last_refresh=now, last_error="")


def _failed(channel, state, exc):
    now = timezone.now()
    message = str(exc) or exc.__class__.__name__
    log.warning(
        "proxy %s/%s: the upstream refresh failed: %s", channel.name, state.index.subdir, message
    )
    metrics.UPSTREAM_FAILURES.inc()
    UpstreamSubdir.objects.filter(pk=state.pk).update(error=message, error_at=now, checked_at=now)
    Upstream.objects.filter(channel=channel).update(last_error=message, last_error_at=now)
