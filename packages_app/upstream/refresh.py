"""A proxy channel's copy of an upstream subdir index, fetched and refreshed.

:func:`refresh_subdir` asks the upstream for ``<subdir>/repodata.json`` (conditionally,
with the validators of the copy it has), and on a new document publishes Wharf's own set
of index files from it — repodata.json, .zst, the CEP-16 shard index and shards,
current_repodata.json — exactly as a hosted channel's are published (same storage layout,
same ``SubdirIndex`` row, so the conda routes serve them unchanged). Only the shards of
names whose records changed are written. It runs under the subdir's index lease, so one
refresh at a time runs per subdir across all processes; a killed one's lease lapses in
seconds.

The upstream's document is never held whole: it is spooled to a temporary file and read
from there one record at a time (:mod:`.documents`), into the records this process kept
from its last refresh of the subdir when it has them (only the names that changed are
replaced), else into a new record set.

The published repodata.json has no ``base_url``: clients fetch package files from Wharf,
which fetches them from the upstream (:mod:`.files`) — its credentials never leave Wharf.
"""

import contextlib
import gc
import logging
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import ijson
import orjson
import urllib3
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

from . import client, documents

log = logging.getLogger(__name__)
# A proxy writes every shard of a subdir at once. On a shard of 19 builds level 3 took
# a thirteenth of the time of the hosted channels' level 16, for 1,293 bytes against 1,304
# (measured 2026-12-05, 2,000 shards; the first copy at 100k records: 11.9 s -> 8.6 s).
PROXY_SHARD_LEVEL = 3


def subdir_state(channel, subdir):
    """The (SubdirIndex, UpstreamSubdir) of a proxied subdir, created when first asked.

    Created current (built at the requested revision, nothing published): a subdir index
    that looks behind is one the hosted rebuilds and the reconciler publish from the
    channel's package files, which would serve a proxy's fetched files as its whole index
    until its first copy replaced them."""
    index, _ = SubdirIndex.objects.get_or_create(
        channel=channel, label=MAIN_LABEL, subdir=subdir, defaults={"built_revision": 0}
    )
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
    except (client.UpstreamError, OSError, ValueError) as exc:
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
    url = f"{upstream.url}/{path}"
    response = client.get(upstream, path, headers, stream=True)
    now = timezone.now()
    if response.status != 200:
        response.close()  # its body is not read
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
            f"{url} answered HTTP {response.status}.", status=response.status
        )
    validators = {
        "etag": response.headers.get("ETag", ""),
        "last_modified": response.headers.get("Last-Modified", ""),
    }
    try:
        with documents.Document(response) as document, _collector_paused():
            records, changed, base_url = _read(document, index)
    except urllib3.exceptions.HTTPError as exc:
        raise client.UpstreamError(f"{url} could not be read: {exc}") from None
    except (ijson.JSONError, ValueError, orjson.JSONEncodeError) as exc:
        # ijson's messages go on with an excerpt of the document, over several lines.
        reason = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise client.UpstreamError(f"{url} is not a valid repodata.json: {reason}") from None
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


def _read(document, index):
    """The records of the upstream's ``document``, the names whose records changed and
    its info.base_url.

    The records this process kept from its last refresh of the subdir are updated where
    names changed, so that what they keep per unchanged name (current_repodata's choice)
    is kept too; they are put back untouched when the document cannot be read.
    """
    revision, before = record_sets.take(index.pk)
    try:
        if before is None:
            records = _copy(index.subdir, document)
        else:
            fresh, unseen = _compare(before, document)
        removed = document.removed()
        base_url = str(document.info().get("base_url") or "")
    except BaseException:
        if before is not None:
            record_sets.put(index.pk, revision, before)
        raise
    if before is None:
        changed = set(records.names)
    else:
        records, changed = before, _update(before, fresh, unseen)
    records.removed = removed
    return records, changed, base_url


@contextlib.contextmanager
def _collector_paused():
    """Python's cyclic garbage collector held off while a document is read.

    Every record read is a new dict that reference counting frees (none is part of a
    cycle), but their number sets the collector off, and each full collection walks
    every object the process keeps: with a worker's records of 470,000 kept, 5 full
    collections took 1.3 s of a refresh of 8.7 s (measured 2026-12-06).
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _copy(subdir, document):
    """A new record set of every record of ``document``, read one at a time."""
    records = repodata.RecordSet(subdir)
    records.replace_names(
        (),
        (
            (filename, record["name"], repodata.record_json(record), False)
            for filename, record in document.records()
        ),
    )
    return records


def _fragment(filename, record_json):
    return orjson.dumps(filename) + b":" + record_json.encode()


def _compare(records, document):
    """The files ``document`` lists otherwise than ``records`` hold them, as
    ``{filename: (name, record JSON)}``, and the held files it does not list as held."""
    unseen = dict.fromkeys(records.fragments)  # the held filenames themselves, not copies
    fresh = {}
    for filename, record in document.records():
        record_json = repodata.record_json(record)
        if records.fragments.get(filename) == _fragment(filename, record_json):
            unseen.pop(filename, None)
            fresh.pop(filename, None)  # listed twice: the last one counts, as when parsed
        else:
            fresh[filename] = (record["name"], record_json)
    return fresh, unseen


def _update(records, fresh, unseen):
    """Replace, in ``records``, the names of files that are ``fresh`` or ``unseen`` (see
    :func:`_compare`) by what the document lists for them; return those names."""
    changed = {name for name, _ in fresh.values()}
    if unseen:
        changed.update(
            name for name, files in records.names.items() if not unseen.keys().isdisjoint(files)
        )
    rows = [
        (filename, name, _record_json(records, filename), False)
        for name in changed
        for filename in records.names.get(name, ())
        if filename not in unseen and filename not in fresh  # listed as held
    ]
    rows.extend(
        (filename, name, record_json, False) for filename, (name, record_json) in fresh.items()
    )
    records.replace_names(changed, sorted(rows))
    return changed


def _record_json(records, filename):
    return records.fragments[filename][len(orjson.dumps(filename)) + 1 :].decode()


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
