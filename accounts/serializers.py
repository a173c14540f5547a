from rest_framework import serializers

from channels_app.models import Channel

from .models import ApiToken


class ApiTokenSerializer(serializers.ModelSerializer):
    channels = serializers.SlugRelatedField(
        many=True,
        slug_field="name",
        queryset=Channel.objects.all(),
        required=False,
        error_messages={"does_not_exist": "Channel '{value}' not found."},
    )
    expires_in_days = serializers.IntegerField(
        write_only=True, required=False, min_value=1, max_value=3650
    )
    active = serializers.BooleanField(source="is_active", read_only=True)

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "hint",
            "read_only",
            "channels",
            "created_at",
            "expires_at",
            "expires_in_days",
            "last_used_at",
            "revoked_at",
            "active",
        ]
        read_only_fields = ["hint", "created_at", "expires_at", "last_used_at", "revoked_at"]
