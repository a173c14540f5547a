from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as ModelValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.authentication import ANONYMOUS
from accounts.models import Organization

from . import related
from .access import Action, allowed_actions
from .models import Channel, Membership, Role


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

    class Meta:
        model = Channel
        fields = [
            "name", "description", "private", "organization", "created_at", "role", "url",
            "storage", "related_channels",
        ]  # fmt: skip
        read_only_fields = ["created_at"]

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
