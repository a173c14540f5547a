"""Answers for conda files: streamed, conditional (ETag, Last-Modified), ranged, or
handed to nginx (X-Accel-Redirect) or to the bucket (a presigned URL)."""

import hashlib
import re
from datetime import UTC, datetime
from urllib.parse import quote

import orjson
from django.conf import settings
from django.http import FileResponse, HttpResponse, HttpResponseRedirect, JsonResponse
from django.utils.cache import get_conditional_response
from django.utils.http import http_date, parse_http_date_safe

from accounts.authentication import REALM
from packages_app import storage
from packages_app.discovery import catalog
from packages_app.index import repodata
from packages_app.index.store import empty_index_files, shard_path
from packages_app.models import MAIN_LABEL

from . import statistics

RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
PACKAGE_MAX_AGE = 600
IMMUTABLE = "max-age=31536000, immutable"


def error_response(status, message):
    response = JsonResponse({"detail": message}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = REALM
    return response


def _aware(value):
    """A datetime column read by a raw query (SQLite gives naive UTC datetimes)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def index_cache_control(scope):
    """Cache-Control of the files that change when the channel does (WHARF_INDEX_MAX_AGE).

    ``no-cache`` lets a client keep the file but makes it ask again (If-None-Match, a 304
    when nothing changed) before each use: the next command sees a new upload.
    """
    max_age = settings.WHARF_INDEX_MAX_AGE
    return f"{scope}, max-age={max_age}" if max_age else f"{scope}, no-cache"


def index_file(request, channel, subdir, name, scope, label, published_files, published_at):
    if isinstance(published_files, str | bytes):
        published_files = orjson.loads(published_files)
    if not published_files:
        # A platform subdir without packages (of a channel, or of a label it uses) is
        # an empty one: answered as such, so that clients neither fall back nor fail.
        published_files, published_at = empty_index_files(subdir), None
    if name not in published_files:
        of_label = "" if label == MAIN_LABEL else f" with label '{label}'"
        return error_response(
            404, f"No packages for {subdir}{of_label} in channel '{channel.name}'."
        )
    published = published_files[name]
    return _stream(
        request,
        published["path"],
        etag=f'"{published["etag"]}"',
        last_modified=_aware(published_at),
        size=published["size"],
        content_type=repodata.CONTENT_TYPES[name],
        cache_control=index_cache_control(scope),
    )


def shard(request, channel, subdir, digest_hex, scope, label):
    path = shard_path(channel.pk, subdir, digest_hex, label)
    try:
        size = storage.size(path)
    except FileNotFoundError:
        return error_response(404, "No such shard.")
    return _stream(
        request,
        path,
        etag=f'"{digest_hex[:32]}"',
        last_modified=None,
        size=size,
        content_type="application/zstd",
        cache_control=f"{scope}, {IMMUTABLE}",
    )


def package_file(request, channel, subdir, filename, scope, storage_path, sha256, size, at):
    if storage_path is None:
        return error_response(404, f"No file '{subdir}/{filename}' in channel '{channel.name}'.")
    response = _stream(
        request,
        storage_path,
        etag=f'"{sha256}"',
        last_modified=_aware(at),
        size=size,
        content_type="application/octet-stream",
        cache_control=f"{scope}, max-age={PACKAGE_MAX_AGE}",
        ranges=True,
        download_name=filename,
        redirect=settings.WHARF_DOWNLOAD_MODE == "redirect",
    )
    if statistics.is_download(request, response):
        statistics.count(channel.pk, subdir, filename)
    return response


def _stream(
    request,
    path,
    *,
    etag,
    last_modified,
    size,
    content_type,
    cache_control,
    ranges=False,
    download_name=None,
    redirect=False,
):
    def finish(response):
        response["ETag"] = etag
        if last_modified is not None:
            response["Last-Modified"] = http_date(last_modified.timestamp())
        response["Cache-Control"] = cache_control
        if ranges:
            response["Accept-Ranges"] = "bytes"
        return response

    not_modified = get_conditional_response(
        request,
        etag=etag,
        last_modified=int(last_modified.timestamp()) if last_modified else None,
    )
    if not_modified is not None:
        return finish(not_modified)

    byte_range = _parse_range(request, size, etag, last_modified) if ranges else None
    if byte_range == "unsatisfiable":
        response = error_response(416, "The requested range is outside the file.")
        response["Content-Range"] = f"bytes */{size}"
        return finish(response)

    if request.method == "HEAD":
        response = HttpResponse(content_type=content_type)
        response["Content-Length"] = str(size)
        return finish(response)

    if redirect:
        # The bytes come from the bucket. The URL is valid for anyone who holds it, so no
        # cache may keep it, least of all a shared one.
        response = HttpResponseRedirect(storage.download_url(path, download_name))
        response["Cache-Control"] = "private, no-store"
        return response

    if settings.WHARF_ACCEL_REDIRECT_PREFIX:
        # nginx sends the file from its internal location, byte ranges included; it keeps
        # these headers, takes ETag and Last-Modified as its configuration says
        # (docs/deploy-serving.md) and adds Accept-Ranges itself.
        response = HttpResponse(content_type=content_type)
        if settings.WHARF_ACCEL_CACHE_SECONDS > 0:
            # nginx may reuse this authorization for the same credentials and URL that long
            # (before Cache-Control: nginx before 1.23 reads the first one it meets).
            response["X-Accel-Expires"] = str(settings.WHARF_ACCEL_CACHE_SECONDS)
        response = finish(response)
        # Storage paths of valid conda files need no escaping but "+" and "!", which
        # nginx takes literally: leave them, so that the header is the file's path.
        target = quote(path, safe="/+!")
        response["X-Accel-Redirect"] = settings.WHARF_ACCEL_REDIRECT_PREFIX + target
        if download_name:
            response["Content-Disposition"] = f'attachment; filename="{download_name}"'
        if response.has_header("Accept-Ranges"):
            del response["Accept-Ranges"]
        return response

    body = storage.stream(path, byte_range)
    if byte_range is None:
        response = _FileResponse(body, content_type=content_type)
        response["Content-Length"] = str(size)
    else:
        start, end = byte_range
        response = _FileResponse(body, content_type=content_type, status=206)
        response["Content-Length"] = str(end - start + 1)
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    if download_name:
        response["Content-Disposition"] = f'attachment; filename="{download_name}"'
    return finish(response)


class _FileResponse(FileResponse):
    # gunicorn sends a local file with sendfile(); servers without wsgi.file_wrapper
    # (granian) and the test client read it in these blocks rather than Django's 4 KiB.
    block_size = storage.BLOCK


def _parse_range(request, size, etag, last_modified):
    """One byte range from a Range header as (start, end), None for the whole file."""
    header = request.META.get("HTTP_RANGE", "")
    match = RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None
    if_range = request.META.get("HTTP_IF_RANGE", "").strip()
    if if_range and not _same_file(if_range, etag, last_modified):
        return None  # the client's part is of another file: it gets the whole current one
    first, last = match.groups()
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    else:
        start = max(size - int(last), 0)
        end = size - 1
    if start >= size or start > end:
        return "unsatisfiable"
    return start, end


def _same_file(if_range, etag, last_modified):
    """Whether an If-Range validator names the file served (RFC 9110, 13.1.5): our strong
    ETag exactly, or a date exactly our Last-Modified. A weak tag never matches."""
    if if_range.startswith('"'):
        return if_range == etag
    date = parse_http_date_safe(if_range)
    return (
        date is not None and last_modified is not None and (date == int(last_modified.timestamp()))
    )


def channeldata(request, channel, label):
    """A summary of the label's packages, for tools and people (no client needs it).

    Built on each request; its ETag is a digest of the body, so a client revalidating
    gets a 304 when nothing in it changed.
    """
    body = orjson.dumps(catalog.channeldata(channel, label))
    etag = f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'
    response = get_conditional_response(request, etag=etag)
    if response is None:
        response = HttpResponse(body, content_type="application/json")
    response["ETag"] = etag
    response["Cache-Control"] = index_cache_control("private" if channel.private else "public")
    return response


# CEP-6 channel notices, which conda asks for on every command: Wharf publishes none.
NOTICES = orjson.dumps({"notices": []})


def notices(request, channel):
    """The channel's (empty) notices.json, revalidated by its ETag."""
    etag = f'"{hashlib.sha256(NOTICES).hexdigest()[:32]}"'
    response = get_conditional_response(request, etag=etag)
    if response is None:
        response = HttpResponse(NOTICES, content_type="application/json")
    response["ETag"] = etag
    response["Cache-Control"] = f"{'private' if channel.private else 'public'}, max-age=60"
    return response
