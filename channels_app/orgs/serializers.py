"""Serializers of the organisation REST endpoints (channels_app.orgs.api)."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import Invitation, Organization, OrganizationMember, OrgRole, Team
from channels_app.models import Role


class OrganizationSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Organization
        fields = ["name", "display_name", "description", "created_at", "role"]
        read_only_fields = ["created_at"]
        # Uniqueness is answered by the domain function (a clear message, no race).
        extra_kwargs = {"name": {"validators": []}}

    def get_role(self, organization) -> str | None:
        """The caller's role in the organisation (null: not a member)."""
        caller = self.context.get("caller")
        return organization.role_of(caller.user) if caller else None


class OrganizationUpdateSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["display_name", "description"]


class OrganizationMemberSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = OrganizationMember
        fields = ["username", "role", "created_at"]
        read_only_fields = fields


class OrgRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=OrgRole.choices)


class InvitationSerializer(serializers.ModelSerializer):
    organization = serializers.CharField(source="organization.name", read_only=True)
    invitee = serializers.CharField(read_only=True)
    invited_by = serializers.SerializerMethodField()
    status = serializers.CharField(read_only=True)

    class Meta:
        model = Invitation
        fields = [
            "id", "organization", "role", "invitee", "invited_by", "created_at", "expires_at",
            "status",
        ]  # fmt: skip
        read_only_fields = fields

    def get_invited_by(self, invitation) -> str | None:
        return invitation.invited_by.username if invitation.invited_by else None


class InviteSerializer(serializers.Serializer):
    invitee = serializers.CharField(
        max_length=254, help_text="The exact username or e-mail address of the person."
    )
    role = serializers.ChoiceField(choices=OrgRole.choices, default=OrgRole.MEMBER)


class TeamSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["name", "description", "created_at"]
        read_only_fields = ["created_at"]
        extra_kwargs = {"name": {"validators": []}}


class TeamChannelSerializer(serializers.Serializer):
    channel = serializers.CharField(source="channel.name", read_only=True)
    role = serializers.ChoiceField(choices=Role.choices)


class TeamDetailSerializer(TeamSerializer):
    members = serializers.SerializerMethodField()
    channels = serializers.SerializerMethodField()

    class Meta(TeamSerializer.Meta):
        fields = [*TeamSerializer.Meta.fields, "members", "channels"]

    def get_members(self, team) -> list[str]:
        return list(
            team.members.order_by("user__username").values_list("user__username", flat=True)
        )

    @extend_schema_field(TeamChannelSerializer(many=True))
    def get_channels(self, team):
        """The team's roles on the channels the caller may read."""
        grants = team.channel_roles.filter(channel__in=self.context["readable"])
        grants = grants.select_related("channel").order_by("channel__name")
        return TeamChannelSerializer(grants, many=True).data


class TransferSerializer(serializers.Serializer):
    organization = serializers.SlugRelatedField(
        slug_field="name",
        queryset=Organization.objects.all(),
        error_messages={"does_not_exist": "Organisation '{value}' not found."},
    )
