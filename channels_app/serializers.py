from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as ModelValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.authentication import ANONYMOUS
from accounts.models import Organization

from . import related, sources
from .access import Action, allowed_actions, readable_channels
from .models import Channel, Kind, Membership, Role


class RelatedChannelsField(serializers.ListField):
    """The channel's related channels, in the order clients should use them: names of
    channels here or URLs of external channels. Read, those the caller may see; written
    whole, checked as the settings page checks them (:func:`channels_app.related.check`).
    """

    def __init__(self, **kwargs):
        kwargs.setdefault(
            "help_text",
            "Names of channels here or http(s) URLs of external channels (e.g. "
            "https://conda.anaconda.org/conda-forge), in order; at most "
            f"{related.MAX_RELATED}. Setting it replaces the whole list.",
        )
        super().__init__(child=serializers.CharField(allow_blank=True), required=False, **kwargs)

    def get_attribute(self, channel):
        return channel

    def to_representation(self, channel):
        shown = self.context.get("related")  # {channel id: entries}, read for a whole page
        if shown is None or channel.pk not in shown:
            shown = related.visible_of([channel], self.context.get("caller") or ANONYMOUS)
        return [entry.label for entry in shown[channel.pk]]


class RelatedChannelsMixin:
    """Checks ``related_channels``; the validated value is the entries
    :func:`channels_app.related.replace` stores."""

    def validate_related_channels(self, value):
        name = self.instance.name if self.instance else str(self.initial_data.get("name", ""))
        try:
            return related.check(name, value, self.context.get("caller") or ANONYMOUS)
        except ModelValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None


@extend_schema_field(
    {
        "type": "object",
        "nullable": True,
        "properties": {
            "url": {"type": "string", "format": "uri"},
            "mode": {"type": "string", "enum": ["proxy", "mirror"]},
            "refresh_seconds": {"type": "integer"},
            "username": {"type": "string", "writeOnly": True},
            "password": {"type": "string", "writeOnly": True},
            "token": {"type": "string", "writeOnly": True},
            "platforms": {"type": "array", "items": {"type": "string"}},
            "include": {"type": "array", "items": {"type": "string"}},
            "exclude": {"type": "array", "items": {"type": "string"}},
            "keep_versions": {"type": "integer", "nullable": True},
            "remove_missing": {"type": "boolean"},
            "authenticated": {"type": "boolean", "readOnly": True},
            "last_refresh": {"type": "string", "format": "date-time", "readOnly": True},
            "last_error": {"type": "string", "nullable": True, "readOnly": True},
        },
    }
)
class UpstreamField(serializers.Field):
    """A proxy or mirror channel's upstream (channels_app.sources): written once, at
    creation, with its credentials; read without them, with the last refresh and error."""

    def __init__(self, **kwargs):
        kwargs.setdefault(
            "help_text",
            'At creation: {"url": ..., "mode": "proxy" | "mirror", "refresh_seconds", '
            '"username"/"password" or "token" (write-only), and for a mirror "platforms", '
            '"include", "exclude", "keep_versions", "remove_missing"}. Site administrators '
            "only. Null for hosted and combined channels.",
        )
        super().__init__(required=False, allow_null=True, **kwargs)

    def get_attribute(self, channel):
        return channel

    def to_representation(self, channel):
        return sources.public_upstream(channel)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("'upstream' is an object with a 'url' and a 'mode'.")
        mode = data.get("mode")
        if mode not in (Kind.PROXY, Kind.MIRROR):
            raise serializers.ValidationError('\'mode\' is "proxy" or "mirror".')
        try:
            return {"mode": mode, **sources.check_upstream(data, mode)}
        except ModelValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None


class CombinesField(serializers.ListField):
    """The channels a combined channel serves, in priority order: written at creation,
    read as the names of those the caller may see."""

    def __init__(self, **kwargs):
        kwargs.setdefault(
            "help_text",
            "At creation: names of channels here (hosted, proxy or mirror), in priority "
            "order; the first that has a package name serves it. Makes a combined channel.",
        )
        super().__init__(child=serializers.CharField(), required=False, **kwargs)

    def get_attribute(self, channel):
        return channel

    def to_representation(self, channel):
        if channel.kind != Kind.COMBINED:
            return []
        caller = self.context.get("caller") or ANONYMOUS
        readable = set(readable_channels(caller).values_list("pk", flat=True))
        return [m.name for m in sources.combined_members(channel) if m.pk in readable]


class ChannelSerializer(RelatedChannelsMixin, serializers.ModelSerializer):
    organization = serializers.SlugRelatedField(
        slug_field="name",
        queryset=Organization.objects.all(),
        required=False,
        allow_null=True,
        help_text="The organisation that owns the channel; null: its members own it.",
        error_messages={"does_not_exist": "Organisation '{value}' not found."},
    )
    role = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    storage = serializers.SerializerMethodField()
    related_channels = RelatedChannelsField()
    kind = serializers.CharField(read_only=True, help_text="hosted, proxy, mirror or combined")
    upstream = UpstreamField()
    combines = CombinesField()

    class Meta:
        model = Channel
        fields = [
            "name", "description", "private", "organization", "created_at", "role", "url",
            "storage", "related_channels", "kind", "upstream", "combines",
        ]  # fmt: skip
        read_only_fields = ["created_at"]

    def validate(self, data):
        if data.get("upstream") and data.get("combines"):
            raise serializers.ValidationError(
                "A channel has an 'upstream' (proxy, mirror) or 'combines' channels, not both."
            )
        return data

    def get_role(self, channel) -> str | None:
        caller = self.context.get("caller")
        return channel.role_of(caller.user) if caller else None

    @extend_schema_field(
        {
            "type": "object",
            "nullable": True,
            "properties": {
                "used": {"type": "integer"},
                "quota": {"type": "integer", "nullable": True},
            },
        }
    )
    def get_storage(self, channel):
        """Bytes of package files held and the quota (null: no limit); for owners only."""
        caller = self.context.get("caller")
        if caller is None or Action.MANAGE not in allowed_actions(caller, channel):
            return None
        return {"used": channel.storage_used(), "quota": channel.effective_quota}

    def get_url(self, channel) -> str:
        request = self.context.get("request")
        path = f"/{channel.name}/"
        return request.build_absolute_uri(path) if request else path


class ChannelUpdateSerializer(RelatedChannelsMixin, serializers.ModelSerializer):
    related_channels = RelatedChannelsField()

    class Meta:
        model = Channel
        fields = ["description", "private", "related_channels"]


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.SlugRelatedField(
        source="user", slug_field="username", queryset=get_user_model().objects.all()
    )
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)

    class Meta:
        model = Membership
        fields = ["username", "role", "created_at"]
        read_only_fields = ["created_at"]


class RoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)
