"""Web pages of organisations: my organisations and invitations, an organisation's page,
members, teams and settings.

Each page asks the access policy (:func:`channels_app.access.page_organization`) first;
the changes are made by :mod:`channels_app.orgs.operations`, whose errors are shown as they
are: on the form that was posted, or as a message when the change was a button.
"""

from allauth.account.models import EmailAddress
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError
from django.db.models import Count
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.authentication import Caller
from accounts.models import Invitation, OrgRole
from channels_app.access import (
    OrgAction,
    org_allows,
    org_role,
    page_organization,
    readable_channels,
)

from . import operations as organizations
from .forms import (
    DeleteOrganizationForm,
    InviteForm,
    OrganizationForm,
    OrganizationSettingsForm,
    OrgRoleForm,
    TeamChannelForm,
    TeamForm,
    TeamMemberForm,
)

REFUSED = (ValidationError, PermissionDenied)


def _problem(exc):
    """The message of a refused change."""
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)


def _submit(request, form, field, change):
    """Make ``change(cleaned_data)`` if the form is valid; it returns what to tell the user.

    Return None when done, else the form, with the refusal of the change on ``field``.
    """
    if not form.is_valid():
        return form
    try:
        done = change(form.cleaned_data)
    except REFUSED as exc:
        form.add_error(field, _problem(exc))
        return form
    messages.success(request, done)
    return None


def _posted(request, objects, field):
    """The one of ``objects`` whose id was posted in ``field``; 404 when there is none."""
    value = request.POST.get(field, "")
    if not value.isdigit():
        raise Http404(f"No {field} {value!r}.")
    return get_object_or_404(objects, pk=value)


def _context(request, organization, tab):
    user = request.user
    return {
        "organization": organization,
        "tab": tab,
        "role": org_role(user, organization),
        "can": {
            action.name.lower() for action in OrgAction if org_allows(user, organization, action)
        },
    }


def _readable_channels(request, organization):
    channels = readable_channels(Caller(request.user)).filter(organization=organization)
    return channels.annotate(package_count=Count("packages", distinct=True)).order_by("name")


# -- my organisations and invitations -----------------------------------------------------


@login_required
def org_list(request):
    memberships = request.user.organization_memberships.select_related("organization")
    return render(
        request,
        "orgs/list.html",
        {
            "memberships": memberships.order_by("organization__name"),
            "invitations": organizations.pending_invitations(request.user),
            # Invitations to these addresses show once they are confirmed.
            "unconfirmed": EmailAddress.objects.filter(user=request.user, verified=False),
        },
    )


@login_required
def org_new(request):
    form = OrganizationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            organization = organizations.create_organization(
                request.user, **form.cleaned_data, request=request
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        except IntegrityError:  # taken by someone else since the form was checked
            form.add_error("name", "Organization with this Name already exists.")
        else:
            messages.success(request, f"Organisation '{organization.name}' created.")
            return redirect("org", org=organization.name)
    # A refused form comes back with its errors, as a 400 like the REST API's.
    return render(request, "orgs/new.html", {"form": form}, status=400 if form.errors else 200)


def _my_invitation(request, invitation_id):
    # Someone else's invitation answers as a missing one.
    return get_object_or_404(Invitation.objects.for_user(request.user), pk=invitation_id)


@login_required
@require_POST
def invitation_accept(request, invitation_id):
    invitation = _my_invitation(request, invitation_id)
    try:
        member = organizations.accept(invitation, request.user, request=request)
    except REFUSED as exc:
        messages.error(request, _problem(exc))
        return redirect("org-list")
    name = member.organization.name
    messages.success(request, f"You joined '{name}' as {member.role}.")
    return redirect("org", org=name)


@login_required
@require_POST
def invitation_decline(request, invitation_id):
    invitation = _my_invitation(request, invitation_id)
    try:
        organizations.decline(invitation, request.user, request=request)
    except REFUSED as exc:
        messages.error(request, _problem(exc))
    else:
        messages.success(request, f"Invitation to '{invitation.organization.name}' declined.")
    return redirect("org-list")


# -- one organisation ---------------------------------------------------------------------


def org_page(request, org):
    """Anyone sees the organisation and the channels they may read; members see more."""
    organization = page_organization(request, org)
    context = _context(request, organization, "channels")
    context["channels"] = _readable_channels(request, organization)
    if "see_members" in context["can"]:
        context["members"] = organization.members.select_related("user").order_by("user__username")
        context["teams"] = organization.teams.annotate(member_count=Count("members"))
    return render(request, "orgs/page.html", context)


@login_required
def org_members(request, org):
    organization = page_organization(request, org, OrgAction.SEE_MEMBERS)
    form = InviteForm()
    if request.method == "POST":
        outcome = _change_members(request, organization)
        if outcome is None:
            return redirect("org-members", org=organization.name)
        form = outcome
    context = _context(request, organization, "members")
    context.update(
        members=organization.members.select_related("user").order_by("user__username"),
        form=form,
        roles=OrgRole.choices,
    )
    if "manage_members" in context["can"]:
        pending = organization.invitations.pending().select_related("user", "invited_by")
        context["invitations"] = pending
    return render(request, "orgs/members.html", context, status=400 if form.errors else 200)


def _change_members(request, organization):
    """Apply the posted change; None when done, else the invite form with its errors."""
    action = request.POST.get("action")
    if action == "leave":
        try:
            organizations.leave(organization, request.user, request=request)
        except ValidationError as exc:
            messages.error(request, _problem(exc))
            return None
        messages.success(request, f"You left '{organization.name}'.")
        return None
    page_organization(request, organization.name, OrgAction.MANAGE_MEMBERS)
    if action == "invite":

        def invite(data):
            invitation = organizations.invite(
                organization, data["identifier"], data["role"], request.user, request=request
            )
            return f"{invitation.invitee} is invited as {invitation.role}."

        return _submit(request, InviteForm(request.POST), "identifier", invite)
    try:
        if action == "withdraw":
            invitation = _posted(request, organization.invitations, "invitation")
            organizations.withdraw(invitation, request.user, request=request)
            messages.success(request, f"Invitation of {invitation.invitee} withdrawn.")
            return None
        member = _posted(request, organization.members.select_related("user"), "member")
        if action == "role":
            role_form = OrgRoleForm(request.POST)
            if not role_form.is_valid():
                raise ValidationError(f"Choose a role: {', '.join(OrgRole.values)}.")
            organizations.change_role(
                member, role_form.cleaned_data["role"], request.user, request=request
            )
            messages.success(request, f"{member.user.username} is now {member.role}.")
        elif action == "remove":
            organizations.remove_member(member, request.user, request=request)
            messages.success(request, f"{member.user.username} was removed.")
    except REFUSED as exc:
        messages.error(request, _problem(exc))
    return None


@login_required
def org_teams(request, org):
    organization = page_organization(request, org, OrgAction.SEE_MEMBERS)
    form = TeamForm()
    if request.method == "POST":
        page_organization(request, org, OrgAction.MANAGE_TEAMS)

        def create(data):
            team = organizations.create_team(
                organization, data["name"], request.user, description=data["description"],
                request=request,
            )  # fmt: skip
            return f"Team '{team.name}' created."

        form = TeamForm(request.POST)
        if _submit(request, form, "name", create) is None:
            return redirect("org-team", org=organization.name, team=form.cleaned_data["name"])
    context = _context(request, organization, "teams")
    context.update(
        teams=organization.teams.annotate(
            member_count=Count("members", distinct=True),
            channel_count=Count("channel_roles", distinct=True),
        ),
        form=form,
    )
    return render(request, "orgs/teams.html", context, status=400 if form.errors else 200)


@login_required
def org_team(request, org, team):
    organization = page_organization(request, org, OrgAction.SEE_MEMBERS)
    team = get_object_or_404(organization.teams, name=team)
    member_form = TeamMemberForm()
    channel_form = TeamChannelForm(organization=organization)
    if request.method == "POST":
        page_organization(request, org, OrgAction.MANAGE_TEAMS)
        outcome = _change_team(request, organization, team)
        if outcome is None:
            return redirect("org-team", org=organization.name, team=team.name)
        if outcome == "deleted":
            return redirect("org-teams", org=organization.name)
        if isinstance(outcome, TeamMemberForm):
            member_form = outcome
        else:
            channel_form = outcome
    context = _context(request, organization, "teams")
    # Members of the organisation see the team, but of its channels only those they may read.
    readable = readable_channels(Caller(request.user)).values("pk")
    context.update(
        team=team,
        team_members=team.members.select_related("user").order_by("user__username"),
        grants=team.channel_roles.filter(channel__in=readable)
        .select_related("channel")
        .order_by("channel__name"),
        member_form=member_form,
        channel_form=channel_form,
    )
    refused = member_form.errors or channel_form.errors
    return render(request, "orgs/team.html", context, status=400 if refused else 200)


def _change_team(request, organization, team):
    """Apply the posted change; None when done, "deleted", or a form with its errors."""
    action = request.POST.get("action")
    if action == "add-member":

        def add(data):
            organizations.add_team_member(team, data["username"], request.user, request=request)
            return f"{data['username'].username} joined the team."

        return _submit(request, TeamMemberForm(request.POST), "username", add)
    if action == "set-channel":

        def grant(data):
            channel, role = data["channel"], data["role"]
            organizations.set_team_channel_role(team, channel, role, request.user, request=request)
            return f"Team '{team.name}' is {role} of '{channel.name}'."

        form = TeamChannelForm(request.POST, organization=organization)
        return _submit(request, form, "channel", grant)
    try:
        if action == "remove-member":
            member = _posted(request, team.members.select_related("user"), "member")
            organizations.remove_team_member(team, member.user, request.user, request=request)
            messages.success(request, f"{member.user.username} left the team.")
        elif action == "remove-channel":
            grant = _posted(request, team.channel_roles.select_related("channel"), "grant")
            organizations.remove_team_channel(team, grant.channel, request.user, request=request)
            messages.success(
                request, f"Team '{team.name}' no longer has a role on '{grant.channel.name}'."
            )
        elif action == "delete":
            organizations.delete_team(team, request.user, request=request)
            messages.success(request, f"Team '{team.name}' deleted.")
            return "deleted"
    except REFUSED as exc:
        messages.error(request, _problem(exc))
    return None


@login_required
def org_settings(request, org):
    organization = page_organization(request, org, OrgAction.CHANGE)
    form = OrganizationSettingsForm(request.POST or None, organization=organization)
    if request.method == "POST" and form.is_valid():
        organizations.update_organization(
            organization, request.user, **form.cleaned_data, request=request
        )
        messages.success(request, "Settings saved.")
        return redirect("org-settings", org=organization.name)
    return _settings_page(
        request, organization, form, DeleteOrganizationForm(organization=organization),
        status=400 if form.errors else 200,
    )  # fmt: skip


def _settings_page(request, organization, form, delete_form, status=200):
    context = _context(request, organization, "settings")
    context.update(form=form, delete_form=delete_form)
    return render(request, "orgs/settings.html", context, status=status)


@login_required
@require_POST
def org_delete(request, org):
    organization = page_organization(request, org, OrgAction.DELETE)
    form = DeleteOrganizationForm(request.POST, organization=organization)
    if form.is_valid():
        try:
            organizations.delete_organization(organization, request.user, request=request)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Organisation '{organization.name}' deleted.")
            return redirect("org-list")
    settings_form = OrganizationSettingsForm(organization=organization)
    return _settings_page(request, organization, settings_form, form, status=400)
