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
