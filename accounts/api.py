"""REST pieces of identity: how the schema describes token authentication, and audit
events as the API shows them. (The token endpoints are channels_app.tokens.api.)"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import serializers

from .models import AuditEvent


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    """How the API schema describes :class:`~accounts.authentication.TokenAuthentication`."""

    target_class = "accounts.authentication.TokenAuthentication"
    name = "token"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token; also accepted as the Basic password or X-API-Key.",
        }


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_name")
    token = serializers.CharField(source="token_hint")
    channel = serializers.CharField(source="channel_name")

    class Meta:
        model = AuditEvent
        fields = ["id", "created_at", "action", "actor", "token", "channel", "address", "details"]
        read_only_fields = fields
