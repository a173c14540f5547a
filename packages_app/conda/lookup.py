"""One query for a conda file request: the channel, the caller's role and the file's row."""

from django.conf import settings
from django.db import connection

from channels_app.access import prime_role
from channels_app.models import ROLE_RANK, Channel, Membership, Role, TeamChannel, highest_role
from packages_app.files import labels
from packages_app.models import MAIN_LABEL, PackageFile, SubdirIndex

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


def lookup(caller, channel_name, kind, subdir, name, label=None):
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
