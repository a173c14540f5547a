from rest_framework import mixins, permissions, status, viewsets
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response

from accounts.authentication import caller_of
from channels_app.access import effective_role

from .models import ApiToken
from .serializers import ApiTokenSerializer


class ApiTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The caller's own API tokens. The secret is in the answer to create, and only there."""

    serializer_class = ApiTokenSerializer
    permission_classes = [permissions.IsAuthenticated]

    def get_queryset(self):
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
        data = self.get_serializer(token).data
        data["token"] = secret
        return Response(data, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        token = self.get_object()
        caller = caller_of(request)
        if caller.token is not None and caller.token.is_narrowed and caller.token != token:
            raise PermissionDenied("A read-only or channel-limited token may revoke only itself.")
        token.revoke()
        return Response(status=status.HTTP_204_NO_CONTENT)
