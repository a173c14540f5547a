"""One query for a conda file request: the channel, the caller's role and the file's row."""

import re

from django.conf import settings
from django.db import connection
from django.db.models import CharField, Exists, Expression, FilteredRelation, OuterRef, Q

from channels_app.access import ROLE_SOURCES, prime_role, with_roles
from channels_app.models import Channel, highest_role
from packages_app.files import labels
from packages_app.models import MAIN_LABEL, PackageFile, SubdirIndex

# Columns read besides the channel's id, privacy and the caller's roles, by kind of file:
# (the model of the file rows, the columns read, the keys matched).
_ROW_COLUMNS = {
    "index": (SubdirIndex, ("published_files", "published_at"), ("label", "subdir")),
    "package": (PackageFile, ("storage_path", "sha256", "size", "uploaded_at"),
                ("subdir", "filename")),
}  # fmt: skip
_STATEMENTS = {}


class _Slot(Expression):
    """A value of the request, in a statement compiled once: it compiles to one parameter,
    itself, so that its places in the compiled parameters can be found and filled in
    (each time the value is used, one parameter)."""

    def __init__(self, name):
        super().__init__(output_field=CharField())
        self.name = name

    def __repr__(self):
        return f"_Slot({self.name!r})"

    def as_sql(self, compiler, connection):
        return "%s", [self]


class _Statement:
    """SQL compiled from a queryset once, with the request's values (:class:`_Slot`) its
    only parameters.

    The queryset's constants (role names and ranks of the role sources, EXISTS' 1) are
    written into the text: bound as parameters they cost about 15 µs of every lookup on
    PostgreSQL, a tenth of it.
    """

    def __init__(self, queryset):
        sql, params = queryset.query.sql_with_params()
        # Django's SQL holds a parameter as %s and a percent sign as %%.
        parts = _PLACEHOLDERS.split(sql)
        params = iter(params)
        self.slots = []
        text = []
        for part in parts:
            if part != "%s":
                text.append(part)
                continue
            value = next(params)
            if isinstance(value, _Slot):
                self.slots.append(value.name)
                text.append(part)
            else:
                text.append(_literal(value))
        self.sql = "".join(text)

    def parameters(self, **values):
        return [values[name] for name in self.slots]


_PLACEHOLDERS = re.compile(r"(%%|%s)")


def _literal(value):
    """A constant of the lookup's queryset as SQL text. Only what the role sources and
    EXISTS hold is accepted (whole numbers, lowercase names), so no quoting is needed."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(int(value))
    name = re.fullmatch(r"[a-z_]+", value) if isinstance(value, str) else None
    if name:
        return f"'{name.group()}'"
    raise ValueError(f"The conda lookup cannot write {value!r} into its SQL.")


def _statement(kind, labelled, signed_in=True):
    """The lookup for one shape of request: SELECT the channel's id, privacy and kind, the
    caller's role from each source (:func:`channels_app.access.with_roles`)[, whether the
    label is used][, the file's columns] of the channel named ``channel``.

    The role sources are the access policy's own, compiled into this query. For
    anonymous callers (most reads of public channels) they are NULL and not looked up:
    the role subqueries cost planning time on every request.
    """
    key = (kind, labelled, signed_in)
    if key not in _STATEMENTS:
        channels = Channel.objects.filter(name=_Slot("channel")).order_by()
        channels = with_roles(channels, _Slot("user") if signed_in else None)
        columns = ["pk", "private", "kind", *ROLE_SOURCES]
        if labelled:
            used = SubdirIndex.objects.filter(channel=OuterRef("pk"), label=_Slot("label"))
            channels = channels.annotate(label_used=Exists(used))
            columns.append("label_used")
        if kind in _ROW_COLUMNS:
            model, fields, keys = _ROW_COLUMNS[kind]
            relation = model._meta.get_field("channel").related_query_name()
            on = Q(**{f"{relation}__{column}": _Slot(column) for column in keys})
            channels = channels.annotate(file=FilteredRelation(relation, condition=on))
            columns += [f"file__{field}" for field in fields]
        _STATEMENTS[key] = _Statement(channels.values_list(*columns))
    return _STATEMENTS[key]


def lookup(caller, channel_name, kind, subdir, name, label=None):
    """(channel or None, the kind's columns or None, whether the label is used), read in
    one query. ``label`` None is the channel's own URL (label main, always used)."""
    user = caller.user
    labelled = label is not None
    if labelled and not labels.NAME.match(label):
        label = ""  # no label has this name; the query then says so
    signed_in = user.is_authenticated
    statement = _statement(kind, labelled, signed_in)
    params = statement.parameters(
        channel=channel_name,
        user=user.pk,
        label=label if labelled else MAIN_LABEL,
        subdir=subdir,
        filename=name,
    )
    with _lookup_cursor() as cursor:
        cursor.execute(statement.sql, params)
        row = cursor.fetchone()
    if row is None:
        return None, None, True
    channel = Channel.from_db(
        connection.alias, ["id", "name", "private", "kind"],
        [row[0], channel_name, bool(row[1]), row[2]],
    )  # fmt: skip
    prime_role(channel, user, highest_role(*row[3:6]))
    if labelled:
        return channel, row[7:], bool(row[6])
    return channel, row[6:], True


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
