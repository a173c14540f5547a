from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import Organization

from .access import Action, allowed_actions
from .models import Channel, Membership, Role


class ChannelSerializer(serializers.ModelSerializer):
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

    class Meta:
        model = Channel
        fields = [
            "name", "description", "private", "organization", "created_at", "role", "url",
            "storage",
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


class ChannelUpdateSerializer(serializers.ModelSerializer):
    class Meta:
        model = Channel
        fields = ["description", "private"]


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
