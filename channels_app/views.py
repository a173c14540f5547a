"""Web pages about channels: the channel list, a new channel and a channel's management.

A channel's packages page and its statistics are package pages (``packages_app.views``);
they share the channel's header through :func:`channel_context`.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts import audit
from accounts.authentication import Caller

from . import install, lifecycle, members, sources
from .access import Action, allowed_actions, has_role, page_channel, readable_channels, roles_of
from .forms import AddMemberForm, ChannelForm, ChannelSettingsForm, DeleteChannelForm, RoleForm
from .models import Channel
from .orgs import operations as organizations
from .orgs.forms import TransferChannelForm

CHANNELS_PER_PAGE = 50


def channel_list(request):
    caller = Caller(request.user)
    channels = readable_channels(caller).annotate(package_count=Count("packages", distinct=True))
    mine = []
    if request.user.is_authenticated:
        roles = roles_of(request.user, Channel.objects.filter(has_role(request.user)))
        mine = list(channels.filter(pk__in=roles).order_by("name"))
        for channel in mine:
            channel.role = roles[channel.pk]
    public = channels.filter(private=False).order_by("name")
    page = Paginator(public, CHANNELS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "channels/list.html", {"mine": mine, "page": page})


@login_required
def channel_new(request):
    initial = {"owner": request.GET.get("owner", "")}
    form = ChannelForm(request.POST or None, user=request.user, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        options = {"description": data["description"], "private": data["private"]}
        upstream = data.get("upstream")
        if upstream:
            options["kind"] = upstream.pop("mode")
        try:
            with transaction.atomic():
                if data["owner"] is None:
                    channel = lifecycle.create_channel(
                        request.user, data["name"], **options, request=request
                    )
                else:
                    channel = organizations.create_channel(
                        data["owner"], data["name"], request.user, **options, request=request
                    )
                sources.attach(channel, upstream=upstream)
        except IntegrityError:
            form.add_error("name", "A channel with this name already exists.")
        except PermissionDenied as exc:
            form.add_error("owner", str(exc))
        else:
            messages.success(request, f"Channel '{channel.name}' created.")
            return redirect("channel", channel=channel.name)
    # A refused form comes back with its errors, as a 400 like the REST API's.
    may_proxy = any(
        sources.may_set_upstream(request.user, org) for org in [None, *form.organizations.values()]
    )
    context = {"form": form, "may_proxy": may_proxy}
    return render(request, "channels/new.html", context, status=400 if form.errors else 200)


def channel_context(request, channel, tab):
    """What every page of a channel shows: its header, its tabs (``tab`` is the one open)
    and the controls the visitor may use."""
    caller = Caller(request.user)
    return {
        "channel": channel,
        "tab": tab,
        "can": {action.name.lower() for action in allowed_actions(caller, channel)},
        "channel_url": request.build_absolute_uri(f"/{channel.name}"),
    }


def channel_upload(request, channel):
    channel = page_channel(request, channel, Action.UPLOAD)
    context = channel_context(request, channel, "upload")
    context["upload_snippet"] = install.upload_snippet(request, channel)
    return render(request, "channels/upload.html", context)


def channel_members(request, channel):
    channel = page_channel(request, channel, Action.MANAGE)
    form = AddMemberForm()
    if request.method == "POST":
        outcome = _change_members(request, channel)
        if outcome is None:
            return redirect("channel-members", channel=channel.name)
        form = outcome
    context = channel_context(request, channel, "members")
    context.update(
        memberships=channel.memberships.select_related("user").order_by("user__username"),
        form=form,
        roles=RoleForm.base_fields["role"].choices,
    )
    return render(request, "channels/members.html", context, status=400 if form.errors else 200)


def _change_members(request, channel):
    """Apply the posted change; None when done, else the add form with its errors."""
    action = request.POST.get("action")
    if action == "add":
        form = AddMemberForm(request.POST)
        if not form.is_valid():
            return form
        try:
            membership = members.add(
                channel, form.cleaned_data["user"], form.cleaned_data["role"], request=request
            )
        except ValidationError as exc:
            form.add_error("user", exc)
            return form
        messages.success(request, f"{membership.user.username} is now {membership.role}.")
        return None
    membership = get_object_or_404(channel.memberships, pk=request.POST.get("membership"))
    try:
        if action == "role":
            role_form = RoleForm(request.POST)
            if role_form.is_valid():
                members.change_role(membership, role_form.cleaned_data["role"], request=request)
                messages.success(request, f"{membership.user.username} is now {membership.role}.")
        elif action == "remove":
            members.remove(membership, request=request)
            messages.success(request, f"{membership.user.username} was removed.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return None


def channel_settings(request, channel):
    channel = page_channel(request, channel, Action.MANAGE)
    was_private = channel.private
    form = ChannelSettingsForm(request.POST or None, instance=channel, caller=Caller(request.user))
    if request.method == "POST" and form.is_valid():
        form.save()
        audit.visibility_change(channel, was_private, request)
        messages.success(request, "Settings saved.")
        return redirect("channel-settings", channel=channel.name)
    context = channel_context(request, channel, "settings")
    context.update(
        form=form,
        delete_form=DeleteChannelForm(channel=channel),
        transfer_form=_transfer_form(request, channel),
    )
    return render(request, "channels/settings.html", context, status=400 if form.errors else 200)


def _transfer_form(request, channel, data=None):
    """The organisations the channel may move to: those the caller manages."""
    managed = organizations.managed_organizations(request.user)
    return TransferChannelForm(data, organizations=managed.exclude(pk=channel.organization_id))


@require_POST
def channel_transfer(request, channel):
    channel = page_channel(request, channel, Action.MANAGE)
    form = _transfer_form(request, channel, request.POST)
    if not form.is_valid():
        messages.error(
            request, " ".join(form.errors.get("organization", ["Choose an organisation."]))
        )
        return redirect("channel-settings", channel=channel.name)
    organization = form.cleaned_data["organization"]
    try:
        organizations.transfer_channel(channel, organization, request.user, request=request)
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
    else:
        messages.success(request, f"Channel '{channel.name}' now belongs to '{organization.name}'.")
    return redirect("channel-settings", channel=channel.name)


@require_POST
def channel_delete(request, channel):
    channel = page_channel(request, channel, Action.DELETE_CHANNEL)
    form = DeleteChannelForm(request.POST, channel=channel)
    if not form.is_valid():
        context = channel_context(request, channel, "settings")
        settings_form = ChannelSettingsForm(instance=channel, caller=Caller(request.user))
        context.update(
            form=settings_form, delete_form=form, transfer_form=_transfer_form(request, channel)
        )
        return render(request, "channels/settings.html", context, status=400)
    name = channel.name
    lifecycle.delete_channel(channel, request=request)
    messages.success(request, f"Channel '{name}' and all its packages were deleted.")
    return redirect(reverse("channel-list"))


AUDIT_EVENTS_PER_PAGE = 50


def channel_audit(request, channel):
    """The channel's audit log; owners only."""
    channel = page_channel(request, channel, Action.MANAGE)
    events = audit.channel_events(channel)
    context = channel_context(request, channel, "audit")
    context.update(page=Paginator(events, AUDIT_EVENTS_PER_PAGE).get_page(request.GET.get("page")))
    return render(request, "channels/audit.html", context)
