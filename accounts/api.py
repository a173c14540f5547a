from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response

from accounts.authentication import caller_of
from channels_app.access import effective_role

from . import audit
from .models import ApiToken, AuditEvent
from .serializers import ApiTokenSerializer


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


class ApiTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The caller's own API tokens. The secret is in the answer to create, and only there."""

    serializer_class = ApiTokenSerializer
    permission_classes = [permissions.IsAuthenticated]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ApiToken.objects.none()
        return ApiToken.objects.filter(user=self.request.user).prefetch_related("channels")

    def create(self, request):
        caller = caller_of(request)
        if caller.token is not None and caller.token.read_only:
            raise PermissionDenied("A read-only token cannot create tokens.")
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        channels = serializer.validated_data.get("channels", [])
        for channel in channels:
            # Never confirm that a private channel exists to someone who cannot read it.
            if channel.private and effective_role(caller, channel) is None:
                raise ValidationError({"channels": [f"Channel '{channel.name}' not found."]})
        if caller.token is not None and caller.token.limited:
            outside = [c.name for c in channels if c.pk not in caller.token.channel_ids]
            if outside or not channels:
                raise PermissionDenied("A token limited to some channels cannot widen access.")
        token, secret = ApiToken.create_for(
            request.user,
            serializer.validated_data["name"],
            read_only=serializer.validated_data.get("read_only", False),
            channels=channels,
            expires_in_days=serializer.validated_data.get("expires_in_days"),
        )
        audit.record("token.created", request=request, **audit.token_details(token))
        data = self.get_serializer(token).data
        data["token"] = secret
        return Response(data, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        token = self.get_object()
        caller = caller_of(request)
        if caller.token is not None and caller.token.is_narrowed and caller.token != token:
            raise PermissionDenied("A read-only or channel-limited token may revoke only itself.")
        if token.revoke():
            audit.record("token.revoked", request=request, **audit.token_details(token))
        return Response(status=status.HTTP_204_NO_CONTENT)
