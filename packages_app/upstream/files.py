"""A proxy channel's package files: fetched from the upstream on first request, relayed
to the client while they are written to a temporary file, checked against the size and
sha256 of the upstream's record, then stored and served from Wharf's storage forever.

- The client gets every byte but the last chunk as it arrives; the last one only once the
  whole file matched its record. On a mismatch the answer is cut short (its
  Content-Length is never reached, so no client accepts the bytes) and nothing is kept.
- One process fetches a file at a time (an ``UpstreamFetch`` row under a lease its keeper
  renews); concurrent first requests wait for it and are then answered from storage. A
  killed fetcher's lease lapses within seconds, and its temporary file is swept as an
  upload's is (packages_app/intake/cleanup.py).
- A file stored once keeps installing when the upstream removes it or is unreachable.
"""

import contextlib
import hashlib
import itertools
import logging
import os
import tempfile
import time
import uuid

import msgpack
import zstandard
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone

from packages_app import leases, runner, staging
from packages_app.conda import responses, statistics
from packages_app.discovery import catalog
from packages_app.files import labels
from packages_app.index import repodata
from packages_app.index.store import shard_path
from packages_app.intake import cleanup, uploads
from packages_app.models import MAIN_LABEL, PackageFile, SubdirPackage, UpstreamFetch
from registry import metrics

from . import client

log = logging.getLogger(__name__)
CHUNK = 256 * 1024
WAIT_POLL_SECONDS = 0.1


class Mismatch(Exception):
    """The upstream's bytes are not those its repodata describes."""


def package_name(filename):
    """The package name of a conda archive's file name (``name-version-build.ext``)."""
    stem = filename.removesuffix(".conda").removesuffix(".tar.bz2")
    return stem.rsplit("-", 2)[0]


def find_record(index, filename):
    """The upstream's record of ``filename`` in the copy of its index, or None (read from
    the name's shard, as any process can)."""
    name = package_name(filename)
    digest = (
        SubdirPackage.objects.filter(index=index, name=name)
        .values_list("shard_sha256", flat=True)
        .first()
    )
    if not digest or len(digest) != 64:
        return None
    path = shard_path(index.channel_id, index.subdir, digest)
    try:
        with default_storage.open(path, "rb") as handle:
            data = zstandard.ZstdDecompressor().decompress(handle.read(), max_output_size=1 << 30)
    except FileNotFoundError:
        return None
    shard = msgpack.unpackb(data, raw=False)
    record = (shard.get(repodata.record_key(filename)) or {}).get(filename)
    if record is None:
        return None
    for key in ("sha256", "md5"):
        if isinstance(record.get(key), bytes):
            record[key] = record[key].hex()
    return record


def _headers(response, filename, record, scope):
    response["Content-Length"] = str(int(record["size"]))
    response["ETag"] = f'"{record["sha256"]}"'
    response["Cache-Control"] = f"{scope}, max-age={responses.PACKAGE_MAX_AGE}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def fetch_through(request, channel, subdir, filename, scope, record, base_url):
    """Answer a package file of a proxy channel that is not stored yet (its upstream
    ``record``; ``base_url``: where the upstream keeps its files, if not beside its index)."""
    if request.method == "HEAD":  # what the file is, without fetching it
        return _headers(
            HttpResponse(content_type="application/octet-stream"), filename, record, scope
        )
    key = (channel.pk, subdir, filename)
    holder = f"fetch-{uuid.uuid4().hex}"
    deadline = time.monotonic() + 2 * settings.WHARF_UPSTREAM_TIMEOUT_SECONDS
    while not _take(key, holder):
        stored = _stored_row(channel, subdir, filename)
        if stored is not None:
            return responses.package_file(request, channel, subdir, filename, scope, *stored)
        if time.monotonic() > deadline:
            return responses.error_response(
                504, f"'{subdir}/{filename}' is being fetched from the upstream; try again."
            )
        time.sleep(WAIT_POLL_SECONDS)
    stored = _stored_row(channel, subdir, filename)  # fetched while this one waited
    if stored is not None:
        _let_go(key, holder)
        return responses.package_file(request, channel, subdir, filename, scope, *stored)
    upstream = channel.upstream
    path = f"{base_url.rstrip('/')}/{filename}" if base_url else f"{subdir}/{filename}"
    try:
        answer = client.get(upstream, path, stream=True)
    except client.UpstreamError as exc:
        _let_go(key, holder)
        metrics.UPSTREAM_FAILURES.inc()
        return responses.error_response(502, f"The upstream of '{channel.name}': {exc}")
    if answer.status != 200:
        answer.release_conn()
        _let_go(key, holder)
        status = 404 if answer.status in (403, 404, 410) else 502
        return responses.error_response(
            status,
            f"The upstream of '{channel.name}' answered HTTP {answer.status} for "
            f"'{subdir}/{filename}', and Wharf has not stored it.",
        )
    relay = _relay(answer, channel, subdir, filename, record, key, holder)
    try:
        # The first chunk before the answer's status: a small file is checked whole by
        # then, and a mismatch is a 502 rather than a cut-short 200.
        first = next(relay, b"")
    except Mismatch as exc:
        return responses.error_response(
            502,
            f"The upstream of '{channel.name}' sent '{subdir}/{filename}' with {exc}; "
            "nothing was kept.",
        )
    body = itertools.chain([first], relay)
    response = StreamingHttpResponse(body, content_type="application/octet-stream")
    return _headers(response, filename, record, scope)


def _relay(answer, channel, subdir, filename, record, key, holder):
    fd, temp_path = tempfile.mkstemp(prefix=cleanup.TEMP_PREFIX, dir=settings.FILE_UPLOAD_TEMP_DIR)
    lock = cleanup.hold(temp_path)
    digest, size = hashlib.sha256(), 0
    expected_size, expected = int(record["size"]), record["sha256"]
    released = False
    try:
        with leases.kept(("fetch", key), lambda: _renew(key, holder)), os.fdopen(fd, "wb") as out:
            held = b""
            for chunk in answer.stream(CHUNK, decode_content=False):
                size += len(chunk)
                if size > expected_size:
                    raise Mismatch(f"more than the {expected_size} bytes of its record")
                out.write(chunk)
                digest.update(chunk)
                if held:
                    yield held
                held = chunk
            out.flush()
            if size != expected_size:
                raise Mismatch(f"{size} bytes, its record says {expected_size}")
            if digest.hexdigest() != expected:
                raise Mismatch(f"sha256 {digest.hexdigest()}, its record says {expected}")
            _store(channel, subdir, filename, record, temp_path)
            statistics.count(channel.pk, subdir, filename)
            _let_go(key, holder)
            released = True
            yield held
    except Mismatch as exc:
        metrics.UPSTREAM_FAILURES.inc()
        log.warning(
            "proxy %s: the upstream's %s/%s does not match its record (%s); not kept, the "
            "answer was cut short", channel.name, subdir, filename, exc,
        )  # fmt: skip
        _let_go(key, holder)
        released = True
        raise
    finally:
        answer.release_conn()
        with contextlib.suppress(OSError):
            os.unlink(temp_path)
        lock.close()
        if not released:
            # Closed before its end: the client went away, or the answer was dropped
            # unread and is being collected — at any moment, maybe in the middle of a
            # query on this thread's connection. The database is not touched from here:
            # a thread of its own lets the fetch go.
            runner.in_background(_let_go, key, holder)


def _store(channel, subdir, filename, record, temp_path):
    path = uploads.new_storage_path(channel, subdir, filename)
    now = timezone.now()
    with staging.stage(channel, [path], kind="upload") as staged:
        with open(temp_path, "rb") as handle:
            default_storage.save(path, File(handle))
        with transaction.atomic():
            row = PackageFile.objects.create(
                channel=channel, subdir=subdir, filename=filename, name=record["name"],
                version=str(record.get("version", "")), build=str(record.get("build", "")),
                size=int(record["size"]), sha256=record["sha256"],
                md5=str(record.get("md5") or ""),
                record_json=repodata.record_json(record),
                summary=str(record.get("summary", ""))[:5000],
                license=str(record.get("license", ""))[:255],
                storage_path=path, uploaded_at=now, indexed_at=now,
                state=PackageFile.State.INDEXED,
            )  # fmt: skip
            labels.attach_each([row], [[MAIN_LABEL]])
            catalog.refresh(channel, [record["name"]])
            staged.commit([path])
    log.info("proxy %s: stored %s/%s from the upstream", channel.name, subdir, filename)


def _stored_row(channel, subdir, filename):
    columns = ("storage_path", "sha256", "size", "uploaded_at")
    rows = PackageFile.objects.filter(channel=channel, subdir=subdir, filename=filename)
    return rows.values_list(*columns).first()


def _take(key, holder):
    channel_id, subdir, filename = key
    until = leases.until()
    try:
        with transaction.atomic():
            UpstreamFetch.objects.create(
                channel_id=channel_id, subdir=subdir, filename=filename, holder=holder,
                held_until=until,
            )  # fmt: skip
        return True
    except IntegrityError:
        lapsed = UpstreamFetch.objects.filter(
            channel_id=channel_id, subdir=subdir, filename=filename,
            held_until__lt=timezone.now(),
        )  # fmt: skip
        return lapsed.update(holder=holder, held_until=until) == 1


def _renew(key, holder):
    channel_id, subdir, filename = key
    rows = UpstreamFetch.objects.filter(
        channel_id=channel_id, subdir=subdir, filename=filename, holder=holder
    )
    return rows.update(held_until=leases.until()) == 1


def _let_go(key, holder):
    channel_id, subdir, filename = key
    UpstreamFetch.objects.filter(
        channel_id=channel_id, subdir=subdir, filename=filename, holder=holder
    ).delete()
