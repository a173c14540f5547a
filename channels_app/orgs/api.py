"""REST endpoints for organisations, their members, invitations and teams.

Each view parses, asks :func:`channels_app.access.authorize_org`, calls
:mod:`channels_app.orgs.operations` and answers; the rules live there.
"""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as ModelValidationError
from django.db import IntegrityError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotAuthenticated, NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import caller_of
from accounts.models import Invitation, Organization
from channels_app import related
from channels_app.access import Action, OrgAction, authorize, authorize_org, readable_channels
from channels_app.models import Channel
from channels_app.serializers import ChannelSerializer

from . import operations as organizations
from .serializers import (
    InvitationSerializer,
    InviteSerializer,
    OrganizationMemberSerializer,
    OrganizationSerializer,
    OrganizationUpdateSerializer,
    OrgRoleSerializer,
    TeamChannelSerializer,
    TeamDetailSerializer,
    TeamSerializer,
)


class OrgView(APIView):
    """Answers the rules' ValidationError with 400 and its message."""

    def handle_exception(self, exc):
        if isinstance(exc, ModelValidationError):
            exc = ValidationError({"detail": " ".join(exc.messages)})
        return super().handle_exception(exc)

    @property
    def caller(self):
        return caller_of(self.request)

    def organization(self, name, action=OrgAction.READ):
        return authorize_org(self.caller, name, action)

    def context(self, **extra):
        return {"request": self.request, "caller": self.caller, **extra}

    def full_credentials(self):
        """A signed-in caller with a token neither read-only nor limited (or a session)."""
        caller = self.caller
        if caller.is_anonymous:
            raise NotAuthenticated("Sign in or send a token.")
        if caller.token is not None and caller.token.is_narrowed:
            raise PermissionDenied(
                "This token is read-only or limited to channels; this needs a full token."
            )
        return caller


def _user(username):
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise NotFound(f"No user with username '{username}'.")
    return user


class OrganizationList(OrgView, generics.ListAPIView):
    """The organisations the caller is a member of; create one (its creator owns it)."""

    serializer_class = OrganizationSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Organization.objects.none()
        caller = self.caller
        if caller.is_anonymous:
            raise NotAuthenticated("Sign in or send a token to list your organisations.")
        return organizations.organizations_of(caller.user).order_by("name")

    def get_serializer_context(self):
        return self.context()

    def post(self, request):
        caller = self.full_credentials()
        serializer = OrganizationSerializer(data=request.data, context=self.context())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if Organization.objects.filter(name=data["name"]).exists():
            raise ValidationError({"name": [f"Organisation '{data['name']}' already exists."]})
        try:
            organization = organizations.create_organization(
                caller.user, data["name"], display_name=data.get("display_name", ""),
                description=data.get("description", ""), request=request,
            )  # fmt: skip
        except IntegrityError as exc:
            raise ValidationError(
                {"name": [f"Organisation '{data['name']}' already exists."]}
            ) from exc
        return Response(
            OrganizationSerializer(organization, context=self.context()).data,
            status=status.HTTP_201_CREATED,
        )


class OrganizationDetail(OrgView):
    """An organisation: anyone may see it; owners and admins change it, owners delete it
    (refused while it owns channels)."""

    @extend_schema(responses={200: OrganizationSerializer})
    def get(self, request, org):
        organization = self.organization(org)
        return Response(OrganizationSerializer(organization, context=self.context()).data)

    @extend_schema(request=OrganizationUpdateSerializer, responses={200: OrganizationSerializer})
    def patch(self, request, org):
        organization = self.organization(org, OrgAction.CHANGE)
        serializer = OrganizationUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        organizations.update_organization(
            organization, self.caller.user, request=request, **serializer.validated_data
        )
        return Response(OrganizationSerializer(organization, context=self.context()).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, org):
        organization = self.organization(org, OrgAction.DELETE)
        organizations.delete_organization(organization, self.caller.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class OrganizationMembers(OrgView):
    """The members of an organisation and their roles; for its members only."""

    @extend_schema(responses={200: OrganizationMemberSerializer(many=True)})
    def get(self, request, org):
        organization = self.organization(org, OrgAction.SEE_MEMBERS)
        rows = organization.members.select_related("user").order_by("user__username")
        return Response(OrganizationMemberSerializer(rows, many=True).data)


class OrganizationMemberDetail(OrgView):
    """Change a member's role or remove them (owners and admins; owners alone touch
    owners); a member removes themselves to leave."""

    def _member(self, organization, username):
        return get_object_or_404(
            organization.members.select_related("user", "organization"), user__username=username
        )

    @extend_schema(request=OrgRoleSerializer, responses={200: OrganizationMemberSerializer})
    def patch(self, request, org, username):
        organization = self.organization(org, OrgAction.MANAGE_MEMBERS)
        member = self._member(organization, username)
        serializer = OrgRoleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        organizations.change_role(
            member, serializer.validated_data["role"], self.caller.user, request=request
        )
        return Response(OrganizationMemberSerializer(member).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, org, username):
        caller = self.full_credentials()
        leaving = caller.user.username == username
        action = OrgAction.SEE_MEMBERS if leaving else OrgAction.MANAGE_MEMBERS
        organization = self.organization(org, action)
        member = self._member(organization, username)
        organizations.remove_member(member, caller.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class OrganizationInvitations(OrgView):
    """Pending invitations of an organisation; invite someone by exact username or e-mail
    address (owners and admins)."""

    @extend_schema(responses={200: InvitationSerializer(many=True)})
    def get(self, request, org):
        organization = self.organization(org, OrgAction.MANAGE_MEMBERS)
        rows = Invitation.objects.pending().filter(organization=organization)
        rows = rows.select_related("organization", "user", "invited_by")
        return Response(InvitationSerializer(rows, many=True).data)

    @extend_schema(request=InviteSerializer, responses={201: InvitationSerializer})
    def post(self, request, org):
        organization = self.organization(org, OrgAction.MANAGE_MEMBERS)
        serializer = InviteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invitation = organizations.invite(
            organization,
            serializer.validated_data["invitee"],
            serializer.validated_data["role"],
            self.caller.user,
            request=request,
        )
        return Response(InvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)


class OrganizationInvitation(OrgView):
    """Withdraw a pending invitation."""

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, org, invitation_id):
        organization = self.organization(org, OrgAction.MANAGE_MEMBERS)
        invitation = get_object_or_404(organization.invitations, pk=invitation_id)
        organizations.withdraw(invitation, self.caller.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MyInvitations(OrgView):
    """The caller's pending invitations."""

    @extend_schema(responses={200: InvitationSerializer(many=True)})
    def get(self, request):
        caller = self.caller
        if caller.is_anonymous:
            raise NotAuthenticated("Sign in or send a token to see your invitations.")
        rows = organizations.pending_invitations(caller.user)
        return Response(InvitationSerializer(rows, many=True).data)


class AnswerInvitation(OrgView):
    """Accept or decline an invitation addressed to the caller."""

    answer = None  # "accept" or "decline"

    @extend_schema(request=None, responses={200: InvitationSerializer})
    def post(self, request, invitation_id):
        caller = self.full_credentials()
        mine = Invitation.objects.for_user(caller.user).select_related("organization")
        invitation = mine.filter(pk=invitation_id).first()
        if invitation is None:
            raise NotFound(f"No invitation {invitation_id} for you.")
        getattr(organizations, self.answer)(invitation, caller.user, request=request)
        invitation.refresh_from_db()
        return Response(InvitationSerializer(invitation).data)


class TeamView(OrgView):
    def team(self, org, name, action):
        organization = self.organization(org, action)
        return get_object_or_404(organization.teams.select_related("organization"), name=name)

    def detail(self, team):
        readable = readable_channels(self.caller)
        return TeamDetailSerializer(team, context=self.context(readable=readable)).data


class OrganizationTeams(TeamView):
    """The teams of an organisation (for its members); create one (owners and admins)."""

    @extend_schema(responses={200: TeamSerializer(many=True)})
    def get(self, request, org):
        organization = self.organization(org, OrgAction.SEE_MEMBERS)
        return Response(TeamSerializer(organization.teams.order_by("name"), many=True).data)

    @extend_schema(request=TeamSerializer, responses={201: TeamDetailSerializer})
    def post(self, request, org):
        organization = self.organization(org, OrgAction.MANAGE_TEAMS)
        serializer = TeamSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        team = organizations.create_team(
            organization,
            serializer.validated_data["name"],
            self.caller.user,
            description=serializer.validated_data.get("description", ""),
            request=request,
        )
        return Response(self.detail(team), status=status.HTTP_201_CREATED)


class OrganizationTeam(TeamView):
    """A team with its members and its roles on the channels the caller may read."""

    @extend_schema(responses={200: TeamDetailSerializer})
    def get(self, request, org, team):
        return Response(self.detail(self.team(org, team, OrgAction.SEE_MEMBERS)))

    @extend_schema(request=TeamSerializer, responses={200: TeamDetailSerializer})
    def patch(self, request, org, team):
        team = self.team(org, team, OrgAction.MANAGE_TEAMS)
        serializer = TeamSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        organizations.update_team(
            team, self.caller.user, request=request, **serializer.validated_data
        )
        return Response(self.detail(team))

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, org, team):
        team = self.team(org, team, OrgAction.MANAGE_TEAMS)
        organizations.delete_team(team, self.caller.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TeamMemberView(TeamView):
    """Put a member of the organisation in the team, or take them out."""

    @extend_schema(request=None, responses={200: TeamDetailSerializer})
    def put(self, request, org, team, username):
        team = self.team(org, team, OrgAction.MANAGE_TEAMS)
        user = _user(username)
        if not team.members.filter(user=user).exists():
            organizations.add_team_member(team, user, self.caller.user, request=request)
        return Response(self.detail(team))

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, org, team, username):
        team = self.team(org, team, OrgAction.MANAGE_TEAMS)
        organizations.remove_team_member(team, _user(username), self.caller.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TeamChannelView(TeamView):
    """Give the team a role on a channel of the organisation, or take it away."""

    def channel(self, organization, name):
        # The channel's own policy too: giving a team a role on it is managing it.
        channel = authorize(self.caller, name, Action.MANAGE)
        if channel.organization_id != organization.pk:
            raise NotFound(f"Organisation '{organization.name}' has no channel '{name}'.")
        return channel

    @extend_schema(request=TeamChannelSerializer, responses={200: TeamDetailSerializer})
    def put(self, request, org, team, channel):
        team = self.team(org, team, OrgAction.MANAGE_TEAMS)
        serializer = TeamChannelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        organizations.set_team_channel_role(
            team,
            self.channel(team.organization, channel),
            serializer.validated_data["role"],
            self.caller.user,
            request=request,
        )
        return Response(self.detail(team))

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, org, team, channel):
        team = self.team(org, team, OrgAction.MANAGE_TEAMS)
        channel = self.channel(team.organization, channel)
        organizations.remove_team_channel(team, channel, self.caller.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class OrganizationChannels(OrgView, generics.ListAPIView):
    """The organisation's channels the caller may read."""

    serializer_class = ChannelSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Channel.objects.none()
        organization = self.organization(self.kwargs["org"])
        rows = readable_channels(self.caller).filter(organization=organization)
        return rows.select_related("organization").order_by("name")

    def get_serializer_context(self):
        return self.context()

    def get_serializer(self, *args, **kwargs):
        if args and kwargs.get("many"):  # a page: its related channels in one read
            shown = related.visible_of(args[0], self.caller)
            kwargs["context"] = {**self.get_serializer_context(), "related": shown}
        return super().get_serializer(*args, **kwargs)
