"""Where a user's role on a channel comes from: the roles, the rows that grant them, and
the one definition of which rows give which role.

A user's role on a channel is the highest of
- ``direct_role``: their :class:`Membership` of the channel;
- ``team_role``: the best role any of their teams has on it (:class:`TeamChannel`);
- ``org_role``: owner, for an owner or admin of the channel's organisation (being a
  member of the organisation alone gives none).

:func:`annotations` and :func:`granting` both read these sources from :func:`_sources`,
so the role a page shows, the channels a list holds and the role the conda file lookup
reads (it compiles :func:`annotations` into its one query) cannot drift apart. The access
policy (:mod:`channels_app.access`) decides on them; ``Channel.role_of`` reads them.

The models live here rather than in models.py so that models.py (``Channel.role_of``)
can read the sources without the sources reading models.py back.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import OuterRef, Q, Subquery, Value
from django.utils import timezone

from accounts.models import OrganizationMember, OrgRole, TeamMember


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    MAINTAINER = "maintainer", "Maintainer"
    MEMBER = "member", "Member"


# Higher grants more; a user's role is the highest of the roles they get.
ROLE_RANK = {Role.OWNER: 3, Role.MAINTAINER: 2, Role.MEMBER: 1}


def highest_role(*roles):
    """The highest of the roles given (None ones ignored), or None."""
    roles = [role for role in roles if role]
    return Role(max(roles, key=lambda role: ROLE_RANK[role])) if roles else None


def role_rank_expression(field="role"):
    """A SQL expression ranking ``field`` by :data:`ROLE_RANK`, for ordering."""
    ranks = ROLE_RANK.items()
    return models.Case(
        *(models.When(**{field: role}, then=models.Value(rank)) for role, rank in ranks),
        default=models.Value(0),
        output_field=models.IntegerField(),
    )


class Membership(models.Model):
    channel = models.ForeignKey(
        "channels_app.Channel", on_delete=models.CASCADE, related_name="memberships"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "user"], name="one_membership_per_user")
        ]
        ordering = ["channel", "user__username"]

    def __str__(self):
        return f"{self.user} is {self.role} of {self.channel}"


class TeamChannel(models.Model):
    """A team's role on a channel of the team's organisation."""

    team = models.ForeignKey(
        "accounts.Team", on_delete=models.CASCADE, related_name="channel_roles"
    )
    channel = models.ForeignKey(
        "channels_app.Channel", on_delete=models.CASCADE, related_name="team_roles"
    )
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "channel"], name="one_role_per_team_channel")
        ]
        ordering = ["team", "channel__name"]

    def __str__(self):
        return f"{self.team} is {self.role} of {self.channel}"

    def clean(self):
        if self.channel.organization_id != self.team.organization_id:
            raise ValidationError(
                f"Channel '{self.channel.name}' does not belong to organisation "
                f"'{self.team.organization.name}'."
            )


# The names of the annotations :func:`annotations` adds, one per source, in this order.
SOURCES = ("direct_role", "team_role", "org_role")


def _sources(user_id):
    """The role sources of a user: for each, (its annotation name, the user's rows of it,
    (the row's column, the channel's column) that tie a row to a channel, and the role a
    row gives: the name of its role column, or a fixed :class:`Role`).

    The rows come best first where a user may have several for one channel (teams); the
    others have at most one (unique per channel or organisation and user). ``user_id`` is
    an id, or an expression standing for one (a placeholder of a compiled statement).
    """
    managing = [OrgRole.OWNER, OrgRole.ADMIN]
    direct = Membership.objects.filter(user=user_id).order_by()
    # The user's teams as a subquery rather than a join through accounts_team: a few µs
    # less for every conda file request (the lookup compiles this).
    teams = TeamChannel.objects.filter(
        team__in=TeamMember.objects.filter(user=user_id).values("team")
    ).order_by(role_rank_expression().desc())
    organization = OrganizationMember.objects.filter(user=user_id, role__in=managing).order_by()
    return (
        ("direct_role", direct, ("channel", "pk"), "role"),
        ("team_role", teams, ("channel", "pk"), "role"),
        ("org_role", organization, ("organization", "organization_id"), Role.OWNER),
    )


def annotations(user_id):
    """The user's role from each source, as subquery annotations of a Channel queryset
    (named as in :data:`SOURCES`; NULL where the source gives none). The user's role is
    :func:`highest_role` of the three."""
    found = {}
    for name, rows, (key, column), role in _sources(user_id):
        rows = rows.filter(**{key: OuterRef(column)})
        if isinstance(role, Role):
            rows = rows.annotate(granted=Value(role.value)).values("granted")
        else:
            rows = rows.values(role)
        found[name] = Subquery(rows[:1])
    return found


def granting(user_id, roles):
    """A filter on channels: those where some source gives the user one of ``roles``.

    ``roles`` must hold every role above the lowest it holds ("owner", "maintainer or
    higher", ...): then that is the same as the user's highest role being one of them.
    """
    roles = [Role(role) for role in roles]
    found = Q(pk__in=[])  # no channel, until a source adds those it gives a role on
    for _, rows, (key, column), role in _sources(user_id):
        if isinstance(role, Role):
            if role not in roles:
                continue
        else:
            rows = rows.filter(**{f"{role}__in": roles})
        found |= Q(**{f"{column}__in": rows.values(key)})
    return found
