from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone

from . import tokens


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
        "package.deleted": "Package file deleted",
        "package.yanked": "Package file yanked",
        "package.unyanked": "Package file un-yanked",
        "package.labels_changed": "Package file labels changed",
        "package.imported": "Package file imported",
        "channel.imported": "Channel directory imported",
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
