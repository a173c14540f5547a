from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from accounts.models import OrganizationMember, OrgRole

# Channel names follow the rule organisation names follow (accounts.names); re-exported
# for the apps above.
from accounts.names import NAME_PATTERN, RESERVED_NAMES  # noqa: F401


def validate_channel_name(name):
    if not NAME_PATTERN.match(name or ""):
        raise ValidationError(
            "A channel name uses lowercase letters, digits, '-', '_' and '.', starts with a "
            "letter or digit and has at most 100 characters."
        )
    if name in RESERVED_NAMES:
        raise ValidationError(f"'{name}' is reserved by Wharf; choose another channel name.")


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


class ChannelQuerySet(models.QuerySet):
    def with_roles_of(self, user):
        """Annotate the user's role from each source (``direct_role``, ``team_role``,
        ``org_role``) as subqueries, so the channels and the roles come in one query;
        :func:`highest_role` of the three is the user's role (see :meth:`Channel.role_of`).
        """
        direct = Membership.objects.filter(channel=models.OuterRef("pk"), user=user.pk)
        team = TeamChannel.objects.filter(
            channel=models.OuterRef("pk"), team__members__user=user.pk
        ).order_by(role_rank_expression().desc())
        org = OrganizationMember.objects.filter(
            organization=models.OuterRef("organization_id"),
            user=user.pk,
            role__in=[OrgRole.OWNER, OrgRole.ADMIN],
        )
        return self.annotate(
            direct_role=models.Subquery(direct.order_by().values("role")[:1]),
            team_role=models.Subquery(team.values("role")[:1]),
            org_role=models.Subquery(
                org.order_by().annotate(owner=models.Value(Role.OWNER.value)).values("owner")[:1]
            ),
        )


class Channel(models.Model):
    name = models.CharField(max_length=100, unique=True, validators=[validate_channel_name])
    description = models.TextField(blank=True)
    private = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # Set by site administrators only: owners see it, with the usage, on the settings page.
    # An organisation's owners and admins own all its channels (see Channel.role_of).
    organization = models.ForeignKey(
        "accounts.Organization", null=True, blank=True, on_delete=models.PROTECT,
        related_name="channels",
    )  # fmt: skip
    quota_bytes = models.PositiveBigIntegerField(
        "storage quota (bytes)",
        null=True,
        blank=True,
        help_text="Bytes of package files this channel may hold. Empty: the site default "
        "(WHARF_CHANNEL_QUOTA_BYTES); 0: no limit.",
    )

    objects = ChannelQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def effective_quota(self):
        """Bytes of package files the channel may hold, or None for no limit."""
        quota = settings.WHARF_CHANNEL_QUOTA_BYTES if self.quota_bytes is None else self.quota_bytes
        return quota or None

    def storage_used(self):
        """Bytes of package files the channel holds."""
        return self.package_files.aggregate(total=models.Sum("size"))["total"] or 0

    def role_of(self, user):
        """The user's role here, or None: the highest of their direct membership, the
        roles of their teams on the channel and, for a channel of an organisation, owner
        for the organisation's owners and admins. Site superusers act as owners everywhere.
        """
        if not user.is_authenticated:
            return None
        if user.is_superuser:
            return Role.OWNER
        cache = self.__dict__.setdefault("_roles", {})
        if user.pk not in cache:
            roles = Channel.objects.filter(pk=self.pk).with_roles_of(user)
            found = roles.values_list("direct_role", "team_role", "org_role").first()
            cache[user.pk] = highest_role(*found) if found else None
        return cache[user.pk]


class Membership(models.Model):
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="memberships")
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


class RelatedChannel(models.Model):
    """One entry of a channel's ordered list of channels its packages may need.

    Either another Wharf channel or the URL of an external channel such as
    ``https://conda.anaconda.org/conda-forge``.
    """

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="related")
    position = models.PositiveIntegerField()
    target = models.ForeignKey(
        Channel, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    url = models.URLField(max_length=500, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "position"], name="one_related_per_position"
            ),
            models.CheckConstraint(
                condition=(models.Q(target__isnull=False) & models.Q(url=""))
                | (models.Q(target__isnull=True) & ~models.Q(url="")),
                name="related_is_channel_or_url",
            ),
        ]
        ordering = ["channel", "position"]

    def __str__(self):
        return f"{self.channel} → {self.target or self.url}"

    @property
    def label(self):
        """What a user typed for this entry: a channel name or a URL."""
        return self.target.name if self.target_id else self.url


class TeamChannel(models.Model):
    """A team's role on a channel of the team's organisation."""

    team = models.ForeignKey(
        "accounts.Team", on_delete=models.CASCADE, related_name="channel_roles"
    )
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="team_roles")
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
