import re
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from . import tokens
from .fields import bounded_text
from .names import NAME_PATTERN, RESERVED_NAMES


class User(AbstractUser):
    """Wharf's user; a custom model from the first migration so it can grow."""


class ApiTokenQuerySet(models.QuerySet):
    def active(self):
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """A secret that stands for its user in scripts and conda clients.

    Only a SHA-256 digest of the secret is kept; the secret is shown once, when created.
    A token may be limited to some channels and to reading.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tokens"
    )
    name = models.CharField(max_length=100)
    digest = models.CharField(max_length=64, unique=True)
    # The first characters of the secret, so that a user can tell tokens apart.
    hint = models.CharField(max_length=16)
    read_only = models.BooleanField(default=False)
    # Kept apart from the channel list: a limited token whose channels were all deleted
    # must stay limited (to nothing), not become valid for every channel.
    limited = models.BooleanField(default=False)
    channels = models.ManyToManyField("channels_app.Channel", blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.hint}…)"

    @classmethod
    def create_for(cls, user, name, *, read_only=False, channels=(), expires_in_days=None):
        """Create a token and return ``(token, secret)``; the secret is not stored."""
        secret = tokens.new_secret()
        expires_at = None
        if expires_in_days:
            expires_at = timezone.now() + timedelta(days=expires_in_days)
        token = cls.objects.create(
            user=user,
            name=name,
            digest=tokens.digest(secret),
            hint=secret[: len(settings.WHARF_TOKEN_PREFIX) + 4],
            read_only=read_only,
            limited=bool(channels),
            expires_at=expires_at,
        )
        if channels:
            token.channels.set(channels)
        return token, secret

    @property
    def is_active(self):
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()

    @property
    def is_narrowed(self):
        """Read-only or limited to channels: such a token cannot manage tokens."""
        return self.read_only or self.limited

    def allows_channel(self, channel):
        """An unlimited token may be used for every channel of its user."""
        return not self.limited or channel.pk in self.channel_ids

    @property
    def channel_ids(self):
        if not hasattr(self, "_channel_ids"):
            self._channel_ids = frozenset(self.channels.values_list("pk", flat=True))
        return self._channel_ids

    def revoke(self):
        """Revoke the token; return False when it already was."""
        if self.revoked_at is not None:
            return False
        self.revoked_at = timezone.now()
        self.save(update_fields=["revoked_at"])
        # Refused at once by this process's conda routes too; others within their bound.
        tokens.cache.discard(self.digest)
        return True

    def touch(self):
        """Record use, at most once a minute, so that reads do not each write a row.

        Return True for the token's first use ever: of several requests using a new token
        at once, exactly one gets True.
        """
        now = timezone.now()
        if self.last_used_at is None:
            rows = ApiToken.objects.filter(pk=self.pk, last_used_at__isnull=True)
            first = rows.update(last_used_at=now) == 1
            self.last_used_at = now
            return first
        if now - self.last_used_at > timedelta(minutes=1):
            ApiToken.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now
        return False


class AuditEvent(models.Model):
    """One security-relevant action: who, with which token, in which channel, from where.

    Names are kept as text beside the foreign keys, so that an event still says who did
    what after the user, token or channel is gone. Recorded by :mod:`accounts.audit`.
    """

    # Every action that is recorded, with how the pages name it.
    ACTIONS = {
        "token.created": "API key created",
        "token.revoked": "API key revoked",
        "token.first_used": "API key used for the first time",
        "channel.created": "Channel created",
        "channel.visibility_changed": "Visibility changed",
        "channel.deleted": "Channel deleted",
        "member.added": "Member added",
        "member.role_changed": "Role changed",
        "member.removed": "Member removed",
        "package.uploaded": "Package file uploaded",
        "package.replaced": "Package file replaced",
        "package.deleted": "Package file deleted",
        "package.yanked": "Package file yanked",
        "package.unyanked": "Package file un-yanked",
        "package.labels_changed": "Package file labels changed",
        "package.labels_moved": "Package files moved to another label",
        "package.imported": "Package file imported",
        "channel.imported": "Channel directory imported",
        "channel.mirrored": "Mirror run finished",
        "channel.transferred": "Channel transferred to an organisation",
        "org.created": "Organisation created",
        "org.changed": "Organisation changed",
        "org.deleted": "Organisation deleted",
        "org.invited": "Invitation sent",
        "org.invitation_accepted": "Invitation accepted",
        "org.invitation_declined": "Invitation declined",
        "org.invitation_withdrawn": "Invitation withdrawn",
        "org.role_changed": "Organisation role changed",
        "org.member_removed": "Organisation member removed",
        "org.member_left": "Organisation member left",
        "team.created": "Team created",
        "team.changed": "Team changed",
        "team.deleted": "Team deleted",
        "team.member_added": "Team member added",
        "team.member_removed": "Team member removed",
        "team.channel_role_set": "Team channel role set",
        "team.channel_removed": "Team channel role removed",
    }

    action = models.CharField(max_length=40)
    created_at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,  # audit_by_actor covers it
    )
    actor_name = models.CharField(max_length=150, blank=True)
    token = models.ForeignKey(
        ApiToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    token_hint = models.CharField(max_length=16, blank=True)
    channel = models.ForeignKey(
        "channels_app.Channel",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,  # audit_by_channel covers it
    )
    channel_name = models.CharField(max_length=100, blank=True)
    address = models.GenericIPAddressField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["channel", "-created_at"], name="audit_by_channel"),
            models.Index(fields=["actor", "-created_at"], name="audit_by_actor"),
        ]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} by {self.actor_name or '-'}"

    @property
    def label(self):
        return self.ACTIONS.get(self.action, self.action)


class OrgRole(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


def validate_organization_name(name):
    # Organisation names share the pattern and reserved words of channel names.
    if not NAME_PATTERN.match(name or ""):
        raise ValidationError(
            "An organisation name uses lowercase letters, digits, '-', '_' and '.', starts "
            "with a letter or digit and has at most 100 characters."
        )
    if name in RESERVED_NAMES or name in ORGANIZATION_PAGES:
        raise ValidationError(f"'{name}' is reserved by Wharf; choose another organisation name.")


# Pages at /orgs/<segment>/ that are not an organisation's.
ORGANIZATION_PAGES = frozenset({"new", "invitations"})


def validate_team_name(name):
    if not TEAM_NAME_PATTERN.match(name or ""):
        raise ValidationError(
            "A team name uses lowercase letters, digits, '-' and '_', starts with a letter "
            "or digit and has at most 100 characters."
        )


TEAM_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")


class Organization(models.Model):
    """A group of people that owns channels; its owners and admins own all its channels."""

    name = models.CharField(max_length=100, unique=True, validators=[validate_organization_name])
    display_name = models.CharField(max_length=200, blank=True)
    # Shown at the top of every page of the organisation.
    description = bounded_text(2000, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def role_of(self, user):
        """The user's organisation role, or None."""
        if not user.is_authenticated:
            return None
        cache = self.__dict__.setdefault("_org_roles", {})
        if user.pk not in cache:
            cache[user.pk] = self.members.filter(user=user).values_list("role", flat=True).first()
        return cache[user.pk]


class OrganizationMember(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="organization_memberships"
    )
    role = models.CharField(max_length=20, choices=OrgRole.choices, default=OrgRole.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "user"], name="one_organization_member_per_user"
            )
        ]
        ordering = ["organization", "user__username"]

    def __str__(self):
        return f"{self.user} is {self.role} of {self.organization}"


def invitation_expiry():
    return timezone.now() + timedelta(days=settings.WHARF_INVITATION_DAYS)


class InvitationQuerySet(models.QuerySet):
    def pending(self):
        """Neither accepted, declined nor withdrawn, and not expired."""
        return self.filter(
            accepted_at__isnull=True,
            declined_at__isnull=True,
            withdrawn_at__isnull=True,
            expires_at__gt=timezone.now(),
        )

    def for_user(self, user):
        """Invitations addressed to the user: by account, or by one of their verified
        e-mail addresses (a subquery: counting them for the top bar stays one query)."""
        return self.filter(models.Q(user=user) | models.Q(email__in=invitable_emails(user)))


def invitable_emails(user):
    """The e-mail addresses, lowercased, an invitation by e-mail may be accepted with (a
    subquery): the user's verified ones only. Sign-up does not always verify addresses
    (ACCOUNT_EMAIL_VERIFICATION), and an invitation by e-mail goes to an address no
    account had: whoever signs up with it first must prove it is theirs."""
    from allauth.account.models import EmailAddress

    verified = EmailAddress.objects.filter(user=user, verified=True)
    return verified.values_list(models.functions.Lower("email"), flat=True)


class Invitation(models.Model):
    """An offer to join an organisation; the invitee joins only by accepting it."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="invitations"
    )
    role = models.CharField(max_length=20, choices=OrgRole.choices, default=OrgRole.MEMBER)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    # An existing user found by exact username or e-mail; else the address invited.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
        related_name="invitations",
    )  # fmt: skip
    email = models.EmailField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(default=invitation_expiry)
    accepted_at = models.DateTimeField(null=True, blank=True)
    declined_at = models.DateTimeField(null=True, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(user__isnull=False) & models.Q(email=""))
                | (models.Q(user__isnull=True) & ~models.Q(email="")),
                name="invitation_is_for_user_or_email",
            ),
        ]

    def __str__(self):
        return f"{self.invitee} to {self.organization} as {self.role}"

    @property
    def invitee(self):
        return self.user.username if self.user_id else self.email

    @property
    def status(self):
        if self.accepted_at:
            return "accepted"
        if self.declined_at:
            return "declined"
        if self.withdrawn_at:
            return "withdrawn"
        if self.expires_at <= timezone.now():
            return "expired"
        return "pending"

    @property
    def is_pending(self):
        return self.status == "pending"

    def is_for(self, user):
        """Whether ``user`` is the one invited."""
        if self.user_id:
            return self.user_id == user.pk
        return invitable_emails(user).filter(email__iexact=self.email).exists()


class Team(models.Model):
    """People of an organisation who get a role on some of its channels together."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=100, validators=[validate_team_name])
    description = bounded_text(2000, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="one_team_name_per_org")
        ]
        ordering = ["organization", "name"]

    def __str__(self):
        return f"{self.organization}/{self.name}"


class TeamMember(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="team_memberships"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="one_team_member_per_user")
        ]
        ordering = ["team", "user__username"]

    def __str__(self):
        return f"{self.user} in {self.team}"
