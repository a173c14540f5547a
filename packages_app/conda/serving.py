"""Channel files for conda clients: ``/<channel>/<subdir>/<file>`` and ``/t/<token>/...``.

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
from datetime import UTC, datetime
from urllib.parse import quote

import orjson
from django.conf import settings
from django.db import connection
from django.http import (
    FileResponse,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.utils.cache import get_conditional_response
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt

from accounts.authentication import REALM, InvalidCredentials, identify
from channels_app.access import AccessError, Action, authorize, check, prime_role
from channels_app.models import (
    RESERVED_NAMES,
    ROLE_RANK,
    Channel,
    Membership,
    Role,
    TeamChannel,
    highest_role,
)
from packages_app import storage
from packages_app.conda import statistics
from packages_app.discovery import catalog
from packages_app.files import labels
from packages_app.index import repodata
from packages_app.index import store as index_store
from packages_app.intake import archives
from packages_app.models import MAIN_LABEL, PackageFile, SubdirIndex

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
def channel_file(request, channel, path, token=None, label=None):
    response = _channel_file(request, channel, path, token, label)
    if request.method == "HEAD" and not response.streaming and response.content:
        # An error's headers as for GET, without its body (RFC 9110).
        response["Content-Length"] = str(len(response.content))
        response.content = b""
    return response


def _channel_file(request, channel, path, token=None, label=None):
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    try:
        caller = identify(request, token, cached=True)
    except InvalidCredentials as exc:
        return error_response(401, str(exc))
    subdir, _, name = path.partition("/")
    if path == "channeldata.json" or subdir not in archives.SUBDIRS or not name:
        kind = None
    elif name in repodata.INDEX_FILES:
        kind = "index"
    elif SHARD_NAME.match(name):
        kind = None
    else:
        kind = "package"
    found, row, label_used = _lookup(caller, channel, kind, subdir, name, label)
    try:
        channel = check(caller, found, channel, Action.READ)
    except AccessError as exc:
        return error_response(exc.status, exc.message)
    if not label_used:  # only ever after the access check: it tells what a channel holds
        return error_response(404, f"No label '{label}' in channel '{channel.name}'.")
    label = label or MAIN_LABEL
    if path == "channeldata.json":
        return _channeldata(channel, label)
    if subdir not in archives.SUBDIRS or not name:
        return error_response(404, f"No file '{path}' in channel '{channel.name}'.")
    scope = "private" if channel.private else "public"
    if kind == "index":
        return _index_file(request, channel, subdir, name, scope, label, *row)
    if kind == "package":
        return _package_file(request, channel, subdir, name, scope, *row)
    match = SHARD_NAME.match(name)
    return _shard(request, channel, subdir, match.group(1), scope, label)


# -- past the middleware these requests do not need -------------------------------------

# The conda file routes of registry/urls.py, as they match a path without its "/".
_CHANNEL = r"(?P<channel>[a-z0-9][a-z0-9._-]*)"
_LABEL = r"label/(?P<label>[^/]+)/"
_TOKEN_LABEL_ROUTE = re.compile(rf"^t/(?P<token>[A-Za-z0-9-]+)/{_CHANNEL}/{_LABEL}(?P<path>.+)$")
_TOKEN_ROUTE = re.compile(rf"^t/(?P<token>[A-Za-z0-9-]+)/{_CHANNEL}/(?P<path>.+)$")
_LABEL_ROUTE = re.compile(rf"^{_CHANNEL}/{_LABEL}(?P<path>.+)$")
_CHANNEL_ROUTE = re.compile(rf"^{_CHANNEL}/(?P<path>.+)$")


def fast_route(request):
    """The view arguments of a conda file request that may take the fast path, or None.

    Only GET and HEAD without a session cookie (browsers go the usual way, through the
    session and authentication middleware), and only paths that no route listed before
    the channel routes can match: those all begin with a reserved name, and a channel's
    web pages (``/<channel>/``, ``/<channel>/packages/...``) never with a platform name.
    """
    if request.method not in ("GET", "HEAD"):
        return None
    if settings.SESSION_COOKIE_NAME in request.META.get("HTTP_COOKIE", ""):
        return None
    path = request.path_info[1:]
    match = _TOKEN_LABEL_ROUTE.match(path) or _TOKEN_ROUTE.match(path)
    if match is None:
        match = _LABEL_ROUTE.match(path) or _CHANNEL_ROUTE.match(path)
        if match is None or match["channel"] in RESERVED_NAMES:
            return None
    if (
        match["path"] != "channeldata.json"
        and match["path"].partition("/")[0] not in archives.SUBDIRS
    ):
        return None
    return match.groupdict()


class ChannelFileMiddleware:
    """Conda file requests go straight to :func:`channel_file`.

    They skip URL resolution and the session, CSRF, authentication and message
    middleware, which have nothing to do for a token (or anonymous) GET. What the skipped
    middleware would add is added here: the ALLOWED_HOSTS check and Content-Length
    (CommonMiddleware) and X-Frame-Options. Place it right after SecurityMiddleware and
    WhiteNoise, which still run.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        arguments = fast_route(request)
        if arguments is None:
            return self.get_response(request)
        request.get_host()  # raises DisallowedHost (400), as in CommonMiddleware
        route = "label-channel-file" if "label" in arguments else "channel-file"
        request.route_name = f"token-{route}" if "token" in arguments else route
        response = channel_file(request, **arguments)
        if not response.streaming and not response.has_header("Content-Length"):
            response["Content-Length"] = str(len(response.content))
        response.headers.setdefault("X-Frame-Options", settings.X_FRAME_OPTIONS)
        return response


# -- one query: channel, the caller's role, and the row the file needs -------------------

# Columns read besides the channel's id, privacy and the caller's roles, by kind of file.
_ROW_COLUMNS = {
    "index": (SubdirIndex, ("published_files", "published_at"), ("label", "subdir")),
    "package": (PackageFile, ("storage_path", "sha256", "size", "uploaded_at"),
                ("subdir", "filename")),
}  # fmt: skip
_SQL = {}


def _lookup_sql(kind, labelled, signed_in=True):
    """SELECT channel id, private, the caller's direct, team and organisation roles[,
    whether the label is used][, file columns] WHERE channel name = %s.

    Parameters in order: the caller's id twice (team and organisation roles), the label,
    the caller's id (membership), the file's keys, the channel name. For anonymous callers
    (most reads of public channels) the roles are NULL and not looked up: the role
    subqueries cost planning time on every request.
    """
    key = (kind, labelled, signed_in)
    if key not in _SQL:
        from accounts.models import OrganizationMember, OrgRole, TeamMember

        q = connection.ops.quote_name

        def column(model, field):
            return q(model._meta.get_field(field).column)

        def table(model):
            return q(model._meta.db_table)

        channel_id = column(Channel, "id")
        # The access policy's sources of a role (Channel.role_of), as in
        # ChannelQuerySet.with_roles_of: the best role of the caller's teams, and owner for
        # an owner or admin of the channel's organisation. Role names are our constants.
        # noqa below: names and role constants come from the models; values are parameters.
        rank = " ".join(f"WHEN '{role}' THEN {n}" for role, n in ROLE_RANK.items())
        team_role = (
            f"(SELECT tc.{column(TeamChannel, 'role')} FROM {table(TeamChannel)} tc "  # noqa: S608
            f"JOIN {table(TeamMember)} tm ON tm.{column(TeamMember, 'team')} = "
            f"tc.{column(TeamChannel, 'team')} "
            f"WHERE tc.{column(TeamChannel, 'channel')} = c.{channel_id} "
            f"AND tm.{column(TeamMember, 'user')} = %s "
            f"ORDER BY CASE tc.{column(TeamChannel, 'role')} {rank} ELSE 0 END DESC LIMIT 1)"
        )
        org_role = (
            f"(SELECT '{Role.OWNER.value}' FROM {table(OrganizationMember)} om "  # noqa: S608
            f"WHERE om.{column(OrganizationMember, 'organization')} = "
            f"c.{column(Channel, 'organization')} "
            f"AND om.{column(OrganizationMember, 'user')} = %s "
            f"AND om.{column(OrganizationMember, 'role')} IN "
            f"('{OrgRole.OWNER.value}', '{OrgRole.ADMIN.value}'))"
        )
        select = [f"c.{channel_id}", f"c.{column(Channel, 'private')}"]
        joins = []
        if signed_in:
            select += [f"m.{column(Membership, 'role')}", team_role, org_role]
            joins.append(
                f"LEFT JOIN {table(Membership)} m ON m.{column(Membership, 'channel')} = "
                f"c.{channel_id} AND m.{column(Membership, 'user')} = %s"
            )
        else:
            select += ["NULL", "NULL", "NULL"]
        if labelled:
            label_used = (  # names from the models, the label a parameter
                f"EXISTS (SELECT 1 FROM {table(SubdirIndex)} l "  # noqa: S608
                f"WHERE l.{column(SubdirIndex, 'channel')} = c.{channel_id} "
                f"AND l.{column(SubdirIndex, 'label')} = %s)"
            )
            select.append(label_used)
        if kind in _ROW_COLUMNS:
            model, fields, keys = _ROW_COLUMNS[kind]
            select += [f"x.{column(model, field)}" for field in fields]
            on = " AND ".join(f"x.{column(model, key)} = %s" for key in keys)
            joins.append(
                f"LEFT JOIN {q(model._meta.db_table)} x ON x.{column(model, 'channel')} = "
                f"c.{channel_id} AND {on}"
            )
        columns = ", ".join(select)
        tables = f"{q(Channel._meta.db_table)} c {' '.join(joins)}"
        where = f"c.{column(Channel, 'name')} = %s"
        # Names come from the models; every value is a parameter.
        _SQL[key] = f"SELECT {columns} FROM {tables} WHERE {where}"  # noqa: S608
    return _SQL[key]


def _lookup(caller, channel_name, kind, subdir, name, label=None):
    """(channel or None, the kind's columns or None, whether the label is used), read in
    one query. ``label`` None is the channel's own URL (label main, always used)."""
    user = caller.user
    labelled = label is not None
    if labelled and not labels.NAME.match(label):
        label = ""  # no label has this name; the query then says so
    signed_in = user.is_authenticated
    params = [user.pk] * 2 if signed_in else []
    if labelled:
        params.append(label)
    if signed_in:
        params.append(user.pk)
    if kind == "index":
        params += [label if labelled else MAIN_LABEL, subdir]
    elif kind == "package":
        params += [subdir, name]
    params.append(channel_name)
    with _lookup_cursor() as cursor:
        cursor.execute(_lookup_sql(kind, labelled, signed_in), params)
        row = cursor.fetchone()
    if row is None:
        return None, None, True
    channel = Channel.from_db(
        connection.alias, ["id", "name", "private"], [row[0], channel_name, bool(row[1])]
    )
    prime_role(channel, user, highest_role(*row[2:5]))
    if labelled:
        return channel, row[6:], bool(row[5])
    return channel, row[5:], True


def _lookup_cursor():
    """A cursor for the lookup. On PostgreSQL with WHARF_DB_PREPARED_STATEMENTS, one that
    binds parameters on the server, so the lookup runs as a prepared statement: planning
    its role subqueries took about 0.3 ms of every request, more than running them.
    Django's own cursors bind on the client and never prepare (connection poolers).
    Where queries are logged (DEBUG, tests counting queries) Django's cursor is used: its
    log cannot show the text of a prepared statement."""
    prepared = settings.WHARF_DB_PREPARED_STATEMENTS and not connection.queries_logged
    if connection.vendor != "postgresql" or not prepared:
        return connection.cursor()
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.ensure_connection()
    return connection.make_cursor(ServerBindingCursor(connection.connection))


def _aware(value):
    """A datetime column read by a raw query (SQLite gives naive UTC datetimes)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _index_file(request, channel, subdir, name, scope, label, published_files, published_at):
    if isinstance(published_files, str | bytes):
        published_files = orjson.loads(published_files)
    if not published_files or name not in published_files:
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
        cache_control=f"{scope}, max-age={INDEX_MAX_AGE}",
    )


def _shard(request, channel, subdir, digest_hex, scope, label):
    path = index_store.shard_path(channel.pk, subdir, digest_hex, label)
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


def _package_file(request, channel, subdir, filename, scope, storage_path, sha256, size, at):
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

    byte_range = _parse_range(request, size) if ranges else None
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


def _channeldata(channel, label):
    """A summary of the label's packages, for tools and people (no client needs it)."""
    body = orjson.dumps(catalog.channeldata(channel, label))
    response = HttpResponse(body, content_type="application/json")
    response["Cache-Control"] = f"{'private' if channel.private else 'public'}, max-age=60"
    return response
