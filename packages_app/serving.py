"""Channel files for conda clients: ``/<channel>/<subdir>/<file>`` and ``/t/<token>/...``.

Index files come from the folder the last rebuild published, package files from storage;
both are streamed, never read whole into memory. ETag and Last-Modified let clients
revalidate with a 304.
"""

import re

import orjson
import rattler
from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.utils.cache import get_conditional_response
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt

from accounts.authentication import REALM, InvalidCredentials, identify
from channels_app.access import AccessError, Action, authorize

from . import archives, indexing, repodata
from .models import PackageFile, SubdirIndex

SHARD_NAME = re.compile(r"^shards/([0-9a-f]{64})\.msgpack\.zst$")
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
INDEX_MAX_AGE = 300
PACKAGE_MAX_AGE = 600
IMMUTABLE = "max-age=31536000, immutable"


def error_response(status, message):
    response = JsonResponse({"detail": message}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = REALM
    return response


def caller_and_channel(request, channel_name, token=None, action=Action.READ, use_session=True):
    """Identify the caller and ask the access policy; return (caller, channel) or a response."""
    try:
        caller = identify(request, token, use_session=use_session)
        return caller, authorize(caller, channel_name, action)
    except InvalidCredentials as exc:
        return None, error_response(401, str(exc))
    except AccessError as exc:
        return None, error_response(exc.status, exc.message)


@csrf_exempt
def channel_file(request, channel, path, token=None):
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    caller, channel_or_error = caller_and_channel(request, channel, token)
    if caller is None:
        return channel_or_error
    channel = channel_or_error
    if path == "channeldata.json":
        return _channeldata(channel)
    subdir, _, name = path.partition("/")
    if subdir not in archives.SUBDIRS or not name:
        return error_response(404, f"No file '{path}' in channel '{channel.name}'.")
    scope = "private" if channel.private else "public"
    if name in repodata.INDEX_FILES:
        return _index_file(request, channel, subdir, name, scope)
    match = SHARD_NAME.match(name)
    if match:
        return _shard(request, channel, subdir, match.group(1), scope)
    return _package_file(request, channel, subdir, name, scope)


def _index_file(request, channel, subdir, name, scope):
    index = SubdirIndex.objects.filter(channel=channel, subdir=subdir).first()
    if index is None or name not in index.published_files:
        return error_response(404, f"No packages for {subdir} in channel '{channel.name}'.")
    published = index.published_files[name]
    return _stream(
        request,
        published["path"],
        etag=f'"{published["etag"]}"',
        last_modified=index.published_at,
        size=published["size"],
        content_type=repodata.CONTENT_TYPES[name],
        cache_control=f"{scope}, max-age={INDEX_MAX_AGE}",
    )


def _shard(request, channel, subdir, digest_hex, scope):
    path = indexing.shard_path(channel.pk, subdir, digest_hex)
    if not default_storage.exists(path):
        return error_response(404, "No such shard.")
    return _stream(
        request,
        path,
        etag=f'"{digest_hex[:32]}"',
        last_modified=None,
        size=default_storage.size(path),
        content_type="application/zstd",
        cache_control=f"{scope}, {IMMUTABLE}",
    )


def _package_file(request, channel, subdir, filename, scope):
    package_file = (
        PackageFile.objects.filter(channel=channel, subdir=subdir, filename=filename)
        .only("storage_path", "sha256", "size", "uploaded_at")
        .first()
    )
    if package_file is None:
        return error_response(404, f"No file '{subdir}/{filename}' in channel '{channel.name}'.")
    return _stream(
        request,
        package_file.storage_path,
        etag=f'"{package_file.sha256}"',
        last_modified=package_file.uploaded_at,
        size=package_file.size,
        content_type="application/octet-stream",
        cache_control=f"{scope}, max-age={PACKAGE_MAX_AGE}",
        ranges=True,
        download_name=filename,
    )


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

    byte_range = _parse_range(request, size) if ranges else None
    if byte_range == "unsatisfiable":
        response = error_response(416, "The requested range is outside the file.")
        response["Content-Range"] = f"bytes */{size}"
        return finish(response)

    if request.method == "HEAD":
        response = HttpResponse(content_type=content_type)
        response["Content-Length"] = str(size)
        return finish(response)

    handle = default_storage.open(path, "rb")
    if byte_range is None:
        response = FileResponse(handle, content_type=content_type)
        response["Content-Length"] = str(size)
    else:
        start, end = byte_range
        handle.seek(start)
        response = FileResponse(
            _limited(handle, end - start + 1), content_type=content_type, status=206
        )
        response["Content-Length"] = str(end - start + 1)
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    if download_name:
        response["Content-Disposition"] = f'attachment; filename="{download_name}"'
    return finish(response)


def _parse_range(request, size):
    """One byte range from a Range header as (start, end), None for the whole file."""
    header = request.META.get("HTTP_RANGE", "")
    match = RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None
    if request.META.get("HTTP_IF_RANGE"):
        return None  # serving the whole current file is always a correct answer
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


def _limited(handle, length, chunk=64 * 1024):
    try:
        while length > 0:
            data = handle.read(min(chunk, length))
            if not data:
                break
            length -= len(data)
            yield data
    finally:
        handle.close()


def _channeldata(channel):
    """A summary of the channel's packages, for tools and people (no client needs it)."""
    packages = {}
    subdirs = set()
    rows = PackageFile.objects.filter(channel=channel).values_list(
        "name",
        "version",
        "subdir",
        "summary",
        "description",
        "license",
        "home",
        "dev_url",
        "doc_url",
        "uploaded_at",
    )
    latest = {}
    for name, version, subdir, summary, description, license_, home, dev, doc, at in rows:
        subdirs.add(subdir)
        entry = packages.setdefault(name, {"subdirs": set()})
        entry["subdirs"].add(subdir)
        parsed = rattler.Version(version)
        if name not in latest or parsed > latest[name]:
            latest[name] = parsed
            entry.update(
                version=version,
                summary=summary or None,
                description=description or None,
                license=license_ or None,
                home=home or None,
                dev_url=dev or None,
                doc_url=doc or None,
                timestamp=int(at.timestamp()),
            )
    for entry in packages.values():
        entry["subdirs"] = sorted(entry["subdirs"])
    body = {
        "channeldata_version": 1,
        "packages": dict(sorted(packages.items())),
        "subdirs": sorted(subdirs | {"noarch"}),
    }
    response = HttpResponse(orjson.dumps(body), content_type="application/json")
    response["Cache-Control"] = f"{'private' if channel.private else 'public'}, max-age=60"
    return response
