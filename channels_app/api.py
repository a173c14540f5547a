from django.core.exceptions import ValidationError as ModelValidationError
from django.db import IntegrityError, transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotAuthenticated, PermissionDenied, ValidationError
from rest_framework.response import Response

from accounts import audit
from accounts.api import AuditEventSerializer
from accounts.authentication import caller_of
from accounts.models import AuditEvent

from . import lifecycle, members, related, sources
from .access import Action, OrgAction, authorize, authorize_org, readable_channels
from .models import Channel, Kind
from .orgs import operations as organizations
from .orgs.serializers import TransferSerializer
from .serializers import (
    ChannelSerializer,
    ChannelUpdateSerializer,
    MembershipSerializer,
    RoleSerializer,
)


def readable(caller, name):
    """The channel ``name`` if the caller may read it, else None."""
    return readable_channels(caller).filter(name=name).first()


class ChannelViewSet(viewsets.GenericViewSet):
    """Channels the caller may read; create, change and delete channels."""

    lookup_field = "name"
    lookup_value_regex = "[^/]+"
    serializer_class = ChannelSerializer
    queryset = Channel.objects.none()  # for the schema; every action asks the access policy

    def _context(self, **extra):
        return {"request": self.request, "caller": caller_of(self.request), **extra}

    def list(self, request):
        caller = caller_of(request)
        channels = readable_channels(caller).select_related("organization").order_by("name")
        page = self.paginate_queryset(channels)
        shown = related.visible_of(page, caller)  # one read for the page, not one per channel
        data = ChannelSerializer(page, many=True, context=self._context(related=shown)).data
        return self.get_paginated_response(data)

    def create(self, request):
        caller = caller_of(request)
        if caller.is_anonymous:
            raise NotAuthenticated("Sign in or send a token to create a channel.")
        if caller.token is not None and caller.token.is_narrowed:
            raise PermissionDenied(
                "Creating a channel needs a token that is neither read-only nor limited "
                "to channels."
            )
        serializer = ChannelSerializer(data=request.data, context=self._context())
        serializer.is_valid(raise_exception=True)
        organization = serializer.validated_data.get("organization")
        if organization is not None:
            authorize_org(caller, organization.name, OrgAction.CREATE_CHANNEL)
        upstream = serializer.validated_data.get("upstream")
        kind = Kind.HOSTED
        if upstream:
            if not sources.may_set_upstream(caller.user, organization):
                raise PermissionDenied(
                    "Only site administrators create proxy and mirror channels (Wharf "
                    "fetches their upstream on your behalf)."
                )
            kind = upstream.pop("mode")
        combines = None
        if serializer.validated_data.get("combines"):
            kind = Kind.COMBINED
            try:
                combines = sources.check_combines(
                    serializer.validated_data["combines"], lambda n: readable(caller, n)
                )
            except ModelValidationError as exc:
                raise ValidationError({"combines": exc.messages}) from None
        try:
            with transaction.atomic():
                channel = lifecycle.create_channel(
                    caller.user,
                    serializer.validated_data["name"],
                    description=serializer.validated_data.get("description", ""),
                    private=serializer.validated_data.get("private", False),
                    organization=organization,
                    request=request,
                    kind=kind,
                )
                sources.attach(channel, upstream=upstream, combines=combines)
                related.replace(channel, serializer.validated_data.get("related_channels", []))
        except IntegrityError as exc:
            raise ValidationError({"name": ["A channel with this name already exists."]}) from exc
        return Response(
            ChannelSerializer(channel, context=self._context()).data,
            status=status.HTTP_201_CREATED,
        )

    def retrieve(self, request, name=None):
        channel = authorize(caller_of(request), name, Action.READ)
        return Response(ChannelSerializer(channel, context=self._context()).data)

    @extend_schema(request=ChannelUpdateSerializer, responses={200: ChannelSerializer})
    def partial_update(self, request, name=None):
        channel = authorize(caller_of(request), name, Action.MANAGE)
        serializer = ChannelUpdateSerializer(
            channel, data=request.data, partial=True, context=self._context()
        )
        serializer.is_valid(raise_exception=True)
        entries = serializer.validated_data.pop("related_channels", None)
        was_private = channel.private
        with transaction.atomic():
            serializer.save()
            if entries is not None:  # given: the whole list, in its order
                related.replace(channel, entries)
        audit.visibility_change(channel, was_private, request)
        return Response(ChannelSerializer(channel, context=self._context()).data)

    update = partial_update

    def destroy(self, request, name=None):
        channel = authorize(caller_of(request), name, Action.DELETE_CHANNEL)
        lifecycle.delete_channel(channel, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=TransferSerializer, responses={200: ChannelSerializer})
    @action(detail=True, methods=["post"])
    def transfer(self, request, name=None):
        """Move the channel to an organisation: the caller must own the channel and be an
        owner or admin of the organisation. Its members keep their roles."""
        caller = caller_of(request)
        channel = authorize(caller, name, Action.MANAGE)
        serializer = TransferSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        organization = authorize_org(
            caller, serializer.validated_data["organization"].name, OrgAction.CREATE_CHANNEL
        )
        try:
            organizations.transfer_channel(channel, organization, caller.user, request=request)
        except ModelValidationError as exc:
            raise ValidationError({"organization": exc.messages}) from exc
        return Response(ChannelSerializer(channel, context=self._context()).data)


class ChannelAuditLog(generics.ListAPIView):
    """The channel's audit log, newest first; owners only."""

    serializer_class = AuditEventSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema needs no channel
            return AuditEvent.objects.none()
        channel = authorize(caller_of(self.request), self.kwargs["channel_name"], Action.MANAGE)
        return audit.channel_events(channel)


class MemberViewSet(viewsets.ViewSet):
    """The members of a channel and their roles; owners only."""

    lookup_field = "username"
    lookup_value_regex = "[^/]+"
    serializer_class = MembershipSerializer

    def _channel(self, channel_name):
        return authorize(caller_of(self.request), channel_name, Action.MANAGE)

    def list(self, request, channel_name=None):
        channel = self._channel(channel_name)
        memberships = channel.memberships.select_related("user").order_by("user__username")
        return Response(MembershipSerializer(memberships, many=True).data)

    def create(self, request, channel_name=None):
        channel = self._channel(channel_name)
        serializer = MembershipSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            membership = members.add(
                channel,
                serializer.validated_data["user"],
                serializer.validated_data["role"],
                request=request,
            )
        except ModelValidationError as exc:
            raise ValidationError({"username": exc.messages}) from exc
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, channel_name=None, username=None):
        channel = self._channel(channel_name)
        membership = get_object_or_404(channel.memberships, user__username=username)
        serializer = RoleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            members.change_role(membership, serializer.validated_data["role"], request=request)
        except ModelValidationError as exc:
            raise ValidationError({"role": exc.messages}) from exc
        return Response(MembershipSerializer(membership).data)

    update = partial_update

    def destroy(self, request, channel_name=None, username=None):
        channel = self._channel(channel_name)
        membership = get_object_or_404(channel.memberships, user__username=username)
        try:
            members.remove(membership, request=request)
        except ModelValidationError as exc:
            raise ValidationError({"role": exc.messages}) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)
