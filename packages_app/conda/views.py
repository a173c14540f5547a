"""Channel files for conda clients: ``/<channel>/<subdir>/<file>`` and ``/t/<token>/...``.

GET and HEAD read them; PUT uploads a package file to its URL (:mod:`.put`).

``/<channel>/label/<label>/...`` serves the same for one label of the channel: its own
indexes and channeldata. The channel's own URL serves label ``main``. Package files are
the channel's: every URL of the channel serves each of them, whatever its labels, so a
file moved from ``dev`` to ``main`` keeps the URL environments locked to it found.

Index files come from the folder the last rebuild published, package files from storage;
both are streamed, never read whole into memory (from a directory with gunicorn, by
sendfile). ETag and Last-Modified let clients revalidate with a 304. From an S3 bucket,
package files are by default answered with a redirect to a short-lived presigned URL
(``WHARF_DOWNLOAD_MODE``), once the caller is authorized as for every other answer.

These are the requests conda clients send most, so they are kept cheap: the token may
come from the short in-process cache (``WHARF_TOKEN_CACHE_SECONDS``), and one query reads
the channel, the caller's role and the index or package row together; the access policy
(:func:`channels_app.access.check`) then decides exactly as for every other route. With
``WHARF_ACCEL_REDIRECT_PREFIX`` set, Wharf answers with ``X-Accel-Redirect`` and nginx
sends the bytes.
"""

import re

from django.http import HttpResponseNotAllowed
from django.views.decorators.csrf import csrf_exempt

from accounts.authentication import InvalidCredentials, identify
from channels_app.access import AccessError, Action, check
from channels_app.models import Kind
from packages_app.combined import serving as combined
from packages_app.index import repodata
from packages_app.intake import archives
from packages_app.models import MAIN_LABEL
from packages_app.upstream import serving as upstream

from . import responses
from .lookup import lookup
from .put import put_package
from .responses import error_response

SHARD_NAME = re.compile(r"^shards/([0-9a-f]{64})\.msgpack\.zst$")
# Files at the root of a channel (or of one of its labels).
CHANNEL_ROOT_FILES = ("channeldata.json", "notices.json")


@csrf_exempt  # a PUT authenticates by token only (packages_app/conda/put.py)
def channel_file(request, channel, path, token=None, label=None):
    # A HEAD answer loses its body in registry.head, as every other route's.
    if request.method == "PUT":
        return put_package(request, channel, path, token, label)
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD", "PUT"])
    try:
        caller = identify(request, token, cached=True)
    except InvalidCredentials as exc:
        return error_response(401, str(exc))
    subdir, _, name = path.partition("/")
    if path in CHANNEL_ROOT_FILES or subdir not in archives.SUBDIRS or not name:
        kind = None
    elif name in repodata.INDEX_FILES:
        kind = "index"
    elif SHARD_NAME.match(name):
        kind = None
    else:
        kind = "package"
    found, row, label_used = lookup(caller, channel, kind, subdir, name, label)
    try:
        channel = check(caller, found, channel, Action.READ)
    except AccessError as exc:
        return error_response(exc.status, exc.message)
    if not label_used:  # only ever after the access check: it tells what a channel holds
        return error_response(404, f"No label '{label}' in channel '{channel.name}'.")
    if channel.kind == Kind.COMBINED:
        return combined.channel_file(request, caller, channel, path, label)
    label = label or MAIN_LABEL
    if path == "channeldata.json":
        return responses.channeldata(request, channel, label)
    if path == "notices.json":
        return responses.notices(request, channel)
    if subdir not in archives.SUBDIRS or not name:
        return error_response(404, f"No file '{path}' in channel '{channel.name}'.")
    scope = "private" if channel.private else "public"
    if channel.kind == Kind.PROXY and kind == "index":
        return upstream.index_file(request, channel, subdir, name, scope, row)
    if channel.kind == Kind.PROXY and kind == "package":
        return upstream.package_file(request, channel, subdir, name, scope, row)
    if kind == "index":
        return responses.index_file(request, channel, subdir, name, scope, label, *row)
    if kind == "package":
        return responses.package_file(request, channel, subdir, name, scope, *row)
    match = SHARD_NAME.match(name)
    return responses.shard(request, channel, subdir, match.group(1), scope, label)
