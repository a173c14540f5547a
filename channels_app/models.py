from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from accounts.fields import bounded_text

# Channel names follow the rule organisation names follow (accounts.names); re-exported
# for the apps above.
from accounts.names import NAME_PATTERN, RESERVED_NAMES  # noqa: F401

from . import roles

# The roles and the rows that grant them are defined in roles.py (see there why); they
# are re-exported here, where the apps above look for the models.
from .roles import (  # noqa: F401
    ROLE_RANK,
    Membership,
    Role,
    TeamChannel,
    highest_role,
    role_rank_expression,
)


def validate_channel_name(name):
    if not NAME_PATTERN.match(name or ""):
        raise ValidationError(
            "A channel name uses lowercase letters, digits, '-', '_' and '.', starts with a "
            "letter or digit and has at most 100 characters."
        )
    if name in RESERVED_NAMES:
        raise ValidationError(f"'{name}' is reserved by Wharf; choose another channel name.")


class Kind(models.TextChoices):
    """Where a channel's packages come from."""

    HOSTED = "hosted", "hosted"  # uploaded to Wharf
    PROXY = "proxy", "proxy"  # an upstream channel's, fetched when first asked for
    MIRROR = "mirror", "mirror"  # an upstream channel's, copied on a schedule
    COMBINED = "combined", "combined"  # the union of other channels' (a virtual channel)


class ChannelQuerySet(models.QuerySet):
    def with_roles_of(self, user):
        """Annotate the user's role from each source (:data:`roles.SOURCES`:
        ``direct_role``, ``team_role``, ``org_role``) as subqueries, so the channels and
        the roles come in one query; :func:`highest_role` of the three is the user's role
        (see :meth:`Channel.role_of`)."""
        return self.annotate(**roles.annotations(user.pk))


class Channel(models.Model):
    name = models.CharField(max_length=100, unique=True, validators=[validate_channel_name])
    # Shown whole on every page of the channel and in every channel answer of the API.
    description = bounded_text(5000, blank=True)
    private = models.BooleanField(default=False)
    # Where its packages come from (Kind, below); set when it is created.
    kind = models.CharField(
        max_length=10, choices=Kind.choices, default=Kind.HOSTED, editable=False
    )
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
            rows = Channel.objects.filter(pk=self.pk).with_roles_of(user)
            found = rows.values_list(*roles.SOURCES).first()
            cache[user.pk] = highest_role(*found) if found else None
        return cache[user.pk]


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


class Upstream(models.Model):
    """The upstream channel of a proxy or mirror channel.

    Its credentials are kept here, server-side: no answer of Wharf shows them, and the
    URLs clients see are Wharf's own.
    """

    channel = models.OneToOneField(Channel, on_delete=models.CASCADE, related_name="upstream")
    url = models.URLField(max_length=500, help_text="The upstream channel's URL.")
    refresh_seconds = models.PositiveIntegerField(
        default=600, help_text="How old a copy of an upstream index may be before it is "
        "refreshed (in the background: clients get the copy meanwhile).",
    )  # fmt: skip
    username = models.CharField(max_length=200, blank=True)
    password = models.CharField(max_length=500, blank=True)
    token = models.CharField(max_length=500, blank=True)
    # Mirror channels: what is copied.
    platforms = models.JSONField(default=list, blank=True)  # none: every upstream subdir
    include = models.JSONField(default=list, blank=True)  # name globs or match specs
    exclude = models.JSONField(default=list, blank=True)
    keep_versions = models.PositiveIntegerField(null=True, blank=True)
    remove_missing = models.BooleanField(default=False)
    last_refresh = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.channel.name} ← {self.url}"


class CombinedMember(models.Model):
    """One channel of a combined channel, in priority order (the first channel that has
    a package name serves that name)."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="members_combined")
    position = models.PositiveIntegerField()
    member = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="combined_into")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "position"], name="one_member_per_position"),
            models.UniqueConstraint(fields=["channel", "member"], name="each_member_once"),
        ]
        ordering = ["channel", "position"]

    def __str__(self):
        return f"{self.channel.name} ⊇ {self.member.name}"
