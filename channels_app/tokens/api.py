"""REST endpoints of the caller's own API tokens (``/api/v1/tokens/``)."""

from django.core.exceptions import ValidationError as ModelValidationError
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response

from accounts import audit
from accounts.authentication import caller_of
from accounts.models import ApiToken
from channels_app.models import Channel

from . import rules


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
        rules.check_creator(caller)  # before the request is read
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            token, secret = rules.create_token(
                caller, data["name"], read_only=data.get("read_only", False),
                channels=data.get("channels", []), expires_in_days=data.get("expires_in_days"),
                request=request,
            )  # fmt: skip
        except ModelValidationError as exc:
            raise ValidationError(exc.message_dict) from exc
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
