"""Organisations, their members, invitations and teams: the changes and their rules.

Each function checks that ``by`` (the user acting) may make the change — owners and
admins manage members and teams, admins never make, change or remove owners, only owners
delete — and keeps the rules that hold for all: an organisation keeps at least one owner,
people join only by accepting an invitation, team members are members of the
organisation, a team's channels are the organisation's. Rights failures raise
PermissionDenied, broken rules ValidationError, both with a message naming the problem.
Routes still ask :func:`channels_app.access.authorize_org` first (it also checks the
credential used). Every change goes into the audit log; ``request`` names who made it
and from where.
"""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from accounts import audit
from accounts.models import (
    Invitation,
    Organization,
    OrganizationMember,
    OrgRole,
    Team,
    TeamMember,
)
from channels_app import lifecycle
from channels_app.access import (
    ROLE_ACTIONS,
    Action,
    OrgAction,
    org_refusal,
    org_role,
    organizations_allowing,
)
from channels_app.members import find_user
from channels_app.models import Role, TeamChannel

# Where invitees see and accept their invitations.
INVITATIONS_PATH = "/orgs/"
KEEP_AN_OWNER = "An organisation must keep at least one owner."


def _record(action, organization, request, by=None, **details):
    audit.record(action, actor=by, request=request, organization=organization.name, **details)


def _require(by, organization, action):
    refusal = org_refusal(by, organization, action)
    if refusal:
        raise PermissionDenied(refusal)


def require_owner_for(by, organization, what):
    """Admins manage members, but only owners touch owners."""
    if org_role(by, organization) != OrgRole.OWNER:
        raise PermissionDenied(f"Only owners of '{organization.name}' may {what}.")


def _lock_owners(organization, excluding):
    """Whether owners other than ``excluding`` remain (rows locked against a race)."""
    owners = OrganizationMember.objects.select_for_update().filter(
        organization=organization, role=OrgRole.OWNER
    )
    if not owners.exclude(pk=excluding.pk).exists():
        raise ValidationError(KEEP_AN_OWNER)


# -- organisations ------------------------------------------------------------------------


def organizations_of(user):
    """The organisations the user is a member of."""
    if not user.is_authenticated:
        return Organization.objects.none()
    return Organization.objects.filter(members__user=user)


def managed_organizations(user):
    """The organisations where the user may create channels (owner or admin)."""
    return organizations_allowing(user, OrgAction.CREATE_CHANNEL)


@transaction.atomic
def create_organization(user, name, *, display_name="", description="", request=None):
    """Create an organisation; its creator becomes its owner."""
    organization = Organization(
        name=name, display_name=display_name, description=description, created_by=user
    )
    organization.full_clean()
    organization.save()
    OrganizationMember.objects.create(organization=organization, user=user, role=OrgRole.OWNER)
    _record("org.created", organization, request, by=user)
    return organization


@transaction.atomic
def update_organization(organization, by, *, display_name=None, description=None, request=None):
    """Change the display name and description (owners and admins)."""
    _require(by, organization, OrgAction.CHANGE)
    changed = {}
    if display_name is not None and display_name != organization.display_name:
        organization.display_name = changed["display_name"] = display_name
    if description is not None and description != organization.description:
        organization.description = changed["description"] = description
    if changed:
        organization.full_clean()
        organization.save(update_fields=list(changed))
        _record("org.changed", organization, request, by=by, fields=sorted(changed))
    return organization


@transaction.atomic
def delete_organization(organization, by, *, request=None):
    """Delete an organisation that owns no channel (owners only)."""
    _require(by, organization, OrgAction.DELETE)
    names = list(organization.channels.order_by("name").values_list("name", flat=True))
    if names:
        raise ValidationError(
            f"Organisation '{organization.name}' still owns channels: {', '.join(names)}. "
            "Delete them or transfer them first."
        )
    organization.delete()
    _record("org.deleted", organization, request, by=by)


# -- invitations --------------------------------------------------------------------------


def pending_invitations(user):
    """The pending invitations addressed to the user, by account or e-mail address."""
    if not user.is_authenticated:
        return Invitation.objects.none()
    return (
        Invitation.objects.pending()
        .for_user(user)
        .select_related("organization", "invited_by")
        .order_by("-created_at", "-pk")
    )


def count_pending_invitations(user):
    """How many pending invitations await the user (as :func:`pending_invitations`), in
    one query: the top bar shows it on every page."""
    if not user.is_authenticated:
        return 0
    return Invitation.objects.pending().for_user(user).count()


@transaction.atomic
def invite(organization, identifier, role, by, *, request=None):
    """Invite someone by exact username or e-mail address; they join by accepting.

    An address no user has gets an invitation by e-mail; a username must exist. Users are
    never listed or matched partially. The invitee is told by e-mail when there is an
    address to write to; a failure to send does not lose the invitation.
    """
    _require(by, organization, OrgAction.MANAGE_MEMBERS)
    role = _org_role_value(role)
    if role == OrgRole.OWNER:
        require_owner_for(by, organization, "invite owners")
    identifier = (identifier or "").strip()
    if not identifier:
        raise ValidationError("Give the username or e-mail address of the person to invite.")
    user = find_user(identifier)
    email = ""
    if user is None:
        if "@" not in identifier:
            raise ValidationError(f"No user with username '{identifier}'.")
        email = identifier.lower()
        _validate_email(email)
    else:
        if organization.members.filter(user=user).exists():
            raise ValidationError(f"{user.username} is already a member of '{organization.name}'.")
    pending = Invitation.objects.pending().filter(organization=organization)
    addressed = pending.for_user(user) if user is not None else pending.filter(email__iexact=email)
    existing = addressed.first()
    if existing is not None:
        raise ValidationError(
            f"{existing.invitee} already has a pending invitation to '{organization.name}' "
            f"(invitation {existing.pk}, until {existing.expires_at:%Y-%m-%d}); withdraw it "
            "first to invite again."
        )
    now = timezone.now()
    invitation = Invitation.objects.create(
        organization=organization, role=role, invited_by=by, user=user, email=email,
        created_at=now, expires_at=now + timedelta(days=settings.WHARF_INVITATION_DAYS),
    )  # fmt: skip
    _record("org.invited", organization, request, by=by, invitee=invitation.invitee, role=role)
    address = user.email if user is not None else email
    if address:
        transaction.on_commit(lambda: _send_invitation(invitation, address, request))
    return invitation


def _org_role_value(role):
    try:
        return OrgRole(role)
    except ValueError:
        choices = ", ".join(OrgRole.values)
        raise ValidationError(
            f"'{role}' is not an organisation role; use one of {choices}."
        ) from None


def _validate_email(email):
    from django.core.validators import validate_email

    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError(f"'{email}' is not a valid e-mail address.") from None


def _send_invitation(invitation, address, request):
    organization = invitation.organization
    link = request.build_absolute_uri(INVITATIONS_PATH) if request else INVITATIONS_PATH
    inviter = invitation.invited_by.username if invitation.invited_by else "Someone"
    body = (
        f"{inviter} invited you to join the organisation '{organization.name}' on Wharf as "
        f"{invitation.role}.\n\nAccept or decline the invitation at {link} "
        f"(sign in, or sign up with this address and verify it, first); it expires on "
        f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC.\n"
    )
    try:
        send_mail(f"Invitation to join {organization.name} on Wharf", body, None, [address])
    except Exception:  # noqa: BLE001 - the invitation stands; the invitee sees it on the page
        import logging

        logging.getLogger(__name__).exception("Could not send the invitation e-mail")


def _answerable(invitation, user):
    if not invitation.is_for(user):
        raise PermissionDenied("This invitation is addressed to someone else.")
    status = invitation.status
    if status == "expired":
        raise ValidationError(
            f"This invitation expired on {invitation.expires_at:%Y-%m-%d}; ask an owner or "
            f"admin of '{invitation.organization.name}' for a new one."
        )
    if status != "pending":
        raise ValidationError(f"This invitation was already {status}.")


@transaction.atomic
def accept(invitation, user, *, request=None):
    """Join the organisation with the invitation's role; return the membership."""
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    _answerable(invitation, user)
    organization = invitation.organization
    if organization.members.filter(user=user).exists():
        raise ValidationError(f"You are already a member of '{organization.name}'.")
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    member = OrganizationMember.objects.create(
        organization=organization, user=user, role=invitation.role
    )
    _record("org.invitation_accepted", organization, request, by=user, role=invitation.role)
    return member


@transaction.atomic
def decline(invitation, user, *, request=None):
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    _answerable(invitation, user)
    invitation.declined_at = timezone.now()
    invitation.save(update_fields=["declined_at"])
    _record("org.invitation_declined", invitation.organization, request, by=user)
    return invitation


@transaction.atomic
def withdraw(invitation, by, *, request=None):
    """Withdraw a pending invitation (owners and admins; an owner's only by owners)."""
    organization = invitation.organization
    _require(by, organization, OrgAction.MANAGE_MEMBERS)
    if invitation.role == OrgRole.OWNER:
        require_owner_for(by, organization, "withdraw invitations of owners")
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if not invitation.is_pending:
        raise ValidationError(
            f"This invitation is {invitation.status}; only pending ones can be withdrawn."
        )
    invitation.withdrawn_at = timezone.now()
    invitation.save(update_fields=["withdrawn_at"])
    _record("org.invitation_withdrawn", organization, request, by=by, invitee=invitation.invitee)
    return invitation


# -- members ------------------------------------------------------------------------------


@transaction.atomic
def change_role(member, role, by, *, request=None):
    """Give a member another organisation role; owners alone make or unmake owners."""
    organization = member.organization
    _require(by, organization, OrgAction.MANAGE_MEMBERS)
    role = _org_role_value(role)
    previous = member.role
    if OrgRole.OWNER in (previous, role) and role != previous:
        require_owner_for(by, organization, "make or change owners")
    if previous == OrgRole.OWNER and role != OrgRole.OWNER:
        _lock_owners(organization, excluding=member)
    if role != previous:
        member.role = role
        member.save(update_fields=["role"])
        _record(
            "org.role_changed", organization, request, by=by, user=member.user.username,
            role=role, previous_role=previous,
        )  # fmt: skip
    return member


@transaction.atomic
def remove_member(member, by, *, request=None):
    """Remove a member (or, with ``by`` the member, leave), and from the teams too."""
    organization = member.organization
    leaving = by.pk == member.user_id
    if not leaving:
        _require(by, organization, OrgAction.MANAGE_MEMBERS)
        if member.role == OrgRole.OWNER:
            require_owner_for(by, organization, "remove owners")
    if member.role == OrgRole.OWNER:
        _lock_owners(organization, excluding=member)
    TeamMember.objects.filter(team__organization=organization, user=member.user_id).delete()
    member.delete()
    _record(
        "org.member_left" if leaving else "org.member_removed", organization, request, by=by,
        user=member.user.username, role=member.role,
    )  # fmt: skip


def leave(organization, user, *, request=None):
    """The user leaves the organisation (its last owner cannot)."""
    member = organization.members.filter(user=user).first()
    if member is None:
        raise ValidationError(f"You are not a member of '{organization.name}'.")
    remove_member(member, user, request=request)


# -- teams --------------------------------------------------------------------------------


def _unique_team_name(organization, name):
    if organization.teams.filter(name=name).exists():
        raise ValidationError(f"Organisation '{organization.name}' already has a team '{name}'.")


@transaction.atomic
def create_team(organization, name, by, *, description="", request=None):
    _require(by, organization, OrgAction.MANAGE_TEAMS)
    _unique_team_name(organization, name)
    team = Team(organization=organization, name=name, description=description)
    team.full_clean()
    team.save()
    _record("team.created", organization, request, by=by, team=team.name)
    return team


@transaction.atomic
def update_team(team, by, *, name=None, description=None, request=None):
    organization = team.organization
    _require(by, organization, OrgAction.MANAGE_TEAMS)
    changed = []
    if name is not None and name != team.name:
        _unique_team_name(organization, name)
        team.name = name
        changed.append("name")
    if description is not None and description != team.description:
        team.description = description
        changed.append("description")
    if changed:
        team.full_clean()
        team.save(update_fields=changed)
        _record("team.changed", organization, request, by=by, team=team.name, fields=changed)
    return team


@transaction.atomic
def delete_team(team, by, *, request=None):
    _require(by, team.organization, OrgAction.MANAGE_TEAMS)
    team.delete()
    _record("team.deleted", team.organization, request, by=by, team=team.name)


@transaction.atomic
def add_team_member(team, user, by, *, request=None):
    """Add a member of the organisation to the team."""
    organization = team.organization
    _require(by, organization, OrgAction.MANAGE_TEAMS)
    if not organization.members.filter(user=user).exists():
        raise ValidationError(
            f"{user.username} is not a member of '{organization.name}'; invite them first."
        )
    if team.members.filter(user=user).exists():
        raise ValidationError(f"{user.username} is already in team '{team.name}'.")
    member = TeamMember.objects.create(team=team, user=user)
    _record("team.member_added", organization, request, by=by, team=team.name, user=user.username)
    return member


@transaction.atomic
def remove_team_member(team, user, by, *, request=None):
    _require(by, team.organization, OrgAction.MANAGE_TEAMS)
    deleted, _ = team.members.filter(user=user).delete()
    if not deleted:
        raise ValidationError(f"{user.username} is not in team '{team.name}'.")
    _record(
        "team.member_removed", team.organization, request, by=by, team=team.name,
        user=user.username,
    )  # fmt: skip


@transaction.atomic
def set_team_channel_role(team, channel, role, by, *, request=None):
    """Give the team ``role`` on a channel of its organisation (added or changed)."""
    organization = team.organization
    _require(by, organization, OrgAction.MANAGE_TEAMS)
    try:
        role = Role(role)
    except ValueError:
        raise ValidationError(
            f"'{role}' is not a channel role; use one of {', '.join(Role.values)}."
        ) from None
    if channel.organization_id != organization.pk:
        raise ValidationError(
            f"Channel '{channel.name}' does not belong to organisation '{organization.name}'; "
            "transfer it first."
        )
    grant, _ = TeamChannel.objects.update_or_create(
        team=team, channel=channel, defaults={"role": role}
    )
    audit.record(
        "team.channel_role_set", actor=by, channel=channel, request=request,
        organization=organization.name, team=team.name, role=role,
    )  # fmt: skip
    return grant


@transaction.atomic
def remove_team_channel(team, channel, by, *, request=None):
    _require(by, team.organization, OrgAction.MANAGE_TEAMS)
    deleted, _ = TeamChannel.objects.filter(team=team, channel=channel).delete()
    if not deleted:
        raise ValidationError(f"Team '{team.name}' has no role on channel '{channel.name}'.")
    audit.record(
        "team.channel_removed", actor=by, channel=channel, request=request,
        organization=team.organization.name, team=team.name,
    )  # fmt: skip


# -- channels -----------------------------------------------------------------------------


def create_channel(
    organization, name, by, *, description="", private=False, request=None, kind="hosted"
):
    """Create a channel owned by the organisation (its owners and admins)."""
    _require(by, organization, OrgAction.CREATE_CHANNEL)
    return lifecycle.create_channel(
        by, name, description=description, private=private, organization=organization,
        request=request, kind=kind,
    )  # fmt: skip


@transaction.atomic
def transfer_channel(channel, organization, by, *, request=None):
    """Move a channel to the organisation: ``by`` must manage the channel and be an owner
    or admin of the organisation. Its direct members keep their roles; the roles of the
    previous organisation's teams end."""
    role = channel.role_of(by)
    if role is None or Action.MANAGE not in ROLE_ACTIONS[Role(role)]:
        raise PermissionDenied(f"You may not transfer channel '{channel.name}': owners only.")
    _require(by, organization, OrgAction.CREATE_CHANNEL)
    if channel.organization_id == organization.pk:
        raise ValidationError(f"Channel '{channel.name}' already belongs to '{organization.name}'.")
    previous = channel.organization
    TeamChannel.objects.filter(channel=channel).delete()
    channel.organization = organization
    channel.save(update_fields=["organization"])
    channel.__dict__.pop("_roles", None)
    audit.record(
        "channel.transferred", actor=by, channel=channel, request=request,
        organization=organization.name, previous_organization=previous.name if previous else None,
    )  # fmt: skip
    return channel
