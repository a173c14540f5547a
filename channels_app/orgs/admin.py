"""The admin of organisations, invitations and teams, for those who manage them.

Who may do what is the organisation policy of the pages and the API
(:func:`channels_app.access.org_allows`): owners and admins manage an organisation, its
members, invitations and teams; only owners delete it or touch owners. Every change goes
through :mod:`channels_app.orgs.operations`, so it keeps the rules and is audited.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.forms import BaseInlineFormSet, ModelForm

from accounts.models import (
    Invitation,
    Organization,
    OrganizationMember,
    OrgRole,
    Team,
    TeamMember,
    User,
)
from channels_app.access import OrgAction, org_allows
from channels_app.models import Channel, TeamChannel
from registry.adminsite import (
    OrganizationOwnedAdmin,
    OrganizationPartInline,
    managed_organizations,
)

from . import operations as organizations


class OrganizationMemberFormSet(BaseInlineFormSet):
    user = None  # who saves, set per request by OrganizationMemberInline.get_formset

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        kept = [form.cleaned_data for form in self.forms if form.cleaned_data]
        kept = [row for row in kept if not row.get("DELETE")]
        if not any(row["role"] == OrgRole.OWNER for row in kept):
            raise ValidationError(organizations.KEEP_AN_OWNER)
        touched = [
            form for form in self.initial_forms
            if form.has_changed() or self._should_delete_form(form)
        ]  # fmt: skip
        if any(OrgRole.OWNER in (row.initial["role"], row.cleaned_data["role"]) for row in touched):
            # Refused here, on the form, rather than by the rules while saving.
            try:
                organizations.require_owner_for(
                    self.user, self.instance, "make, change or remove owners"
                )
            except PermissionDenied as exc:
                raise ValidationError(str(exc)) from exc


class OrganizationMemberInline(OrganizationPartInline):
    """Roles of the members; people join by accepting an invitation, never added here."""

    model = OrganizationMember
    formset = OrganizationMemberFormSet
    organization_action = OrgAction.MANAGE_MEMBERS
    fields = ["user", "role", "created_at"]
    readonly_fields = ["user", "created_at"]
    extra = 0

    def has_add_permission(self, request, obj=None):
        return False

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.user = request.user
        return formset


class ReadOnlyPartInline(OrganizationPartInline):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class InvitationInline(ReadOnlyPartInline):
    """Pending invitations, read only (sent and withdrawn on the Invitations page)."""

    model = Invitation
    fk_name = "organization"
    fields = ["invitee", "role", "invited_by", "created_at", "expires_at"]
    readonly_fields = fields
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).pending().select_related("user", "invited_by")


class TeamInline(ReadOnlyPartInline):
    """The teams; their members and channel roles are on each team's page."""

    model = Team
    fields = ["name", "description"]
    readonly_fields = fields
    show_change_link = True
    extra = 0


@admin.register(Organization)
class OrganizationAdmin(OrganizationOwnedAdmin):
    """Owners and admins change an organisation and its members; owners alone delete it."""

    organization_path = "pk"
    list_display = ["name", "display_name", "created_by", "created_at"]
    search_fields = ["name", "display_name"]
    fields = ["name", "display_name", "description", "created_by", "created_at"]
    inlines = [OrganizationMemberInline, InvitationInline, TeamInline]

    def get_readonly_fields(self, request, obj=None):
        # Names are part of what people type and link to; set once.
        return ["created_by", "created_at"] + (["name"] if obj is not None else [])

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def save_model(self, request, obj, form, change):
        if change:
            organizations.update_organization(
                Organization.objects.get(pk=obj.pk), request.user, request=request,
                display_name=obj.display_name, description=obj.description,
            )  # fmt: skip
            return
        created = organizations.create_organization(
            request.user, obj.name, display_name=obj.display_name,
            description=obj.description, request=request,
        )  # fmt: skip
        obj.pk, obj.created_by, obj.created_at = created.pk, created.created_by, created.created_at

    def save_formset(self, request, form, formset, change):
        if formset.model is not OrganizationMember:
            return super().save_formset(request, form, formset, change)
        # Through the rules, so each change is audited (the formset checked the owners);
        # new owners first, so that an owner may hand over in one save.
        changed = [
            row for row in formset.forms
            if row.instance.pk is not None and row.has_changed()
            and not formset._should_delete_form(row)
        ]  # fmt: skip
        changed.sort(key=lambda row: row.instance.role != OrgRole.OWNER)
        for row in changed:
            current = OrganizationMember.objects.get(pk=row.instance.pk)
            organizations.change_role(current, row.instance.role, request.user, request=request)
        for row in formset.deleted_forms:
            if row.instance.pk is not None:
                current = OrganizationMember.objects.get(pk=row.instance.pk)
                organizations.remove_member(current, request.user, request=request)
        _saved(formset, changed)
        return None

    def has_delete_permission(self, request, obj=None):
        if not super().has_delete_permission(request, obj):
            return False
        if obj is None:
            return managed_organizations(request.user, OrgAction.DELETE).exists()
        return org_allows(request.user, obj, OrgAction.DELETE)

    def get_deleted_objects(self, objs, request):
        deleted, counts, _perms_needed, protected = super().get_deleted_objects(objs, request)
        # Its owner deletes everything in it; channels are protected and stop the deletion.
        refused = [obj for obj in objs if not org_allows(request.user, obj, OrgAction.DELETE)]
        perms_needed = {Organization._meta.verbose_name} if refused else set()
        return deleted, counts, perms_needed, protected

    def delete_model(self, request, obj):
        organizations.delete_organization(obj, request.user, request=request)

    def delete_queryset(self, request, queryset):
        for organization in queryset:
            self.delete_model(request, organization)


def _saved(formset, changed, new=()):
    """Tell the admin's change message what a formset saved by the rules did."""
    formset.new_objects = [row.instance for row in new]
    formset.changed_objects = [(row.instance, row.changed_data) for row in changed]
    formset.deleted_objects = [row.instance for row in formset.deleted_forms]


class InvitationForm(ModelForm):
    invitee_name = forms.CharField(
        label="Invitee", max_length=254,
        help_text="The exact username or e-mail address of the person to invite.",
    )  # fmt: skip

    class Meta:
        model = Invitation
        fields = ["organization", "role"]

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        # Checked here so that a refusal shows on the form, not as an error page.
        organization, role = cleaned["organization"], cleaned["role"]
        try:
            with transaction.atomic():
                self.sent = organizations.invite(
                    organization, cleaned["invitee_name"], role, self.user, request=self.request
                )
        except (ValidationError, PermissionDenied) as exc:
            raise ValidationError(list(getattr(exc, "messages", [str(exc)]))) from exc
        return cleaned

    def _post_clean(self):
        # organizations.invite checked everything and saved the invitation; the unsaved
        # instance of this form (no invitee yet) is not validated again.
        pass


@admin.register(Invitation)
class InvitationAdmin(OrganizationOwnedAdmin):
    """Invite by exact username or e-mail address; withdraw pending invitations."""

    form = InvitationForm
    organization_action = OrgAction.MANAGE_MEMBERS
    list_display = ["invitee", "organization", "role", "status", "invited_by", "expires_at"]
    list_filter = ["role", ("organization", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["organization", "user", "invited_by"]
    actions = ["withdraw"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["organization", "invitee_name", "role"]
        return ["organization", "invitee", "role", "status", "invited_by", "created_at",
                "expires_at", "accepted_at", "declined_at", "withdrawn_at"]  # fmt: skip

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def get_form(self, request, obj=None, **kwargs):
        if obj is not None:
            return super().get_form(request, obj, **kwargs)
        form = super().get_form(request, obj, **kwargs)
        form.user, form.request = request.user, request
        return form

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        # Sent by the form's check; the admin goes on with the invitation it made.
        for field in Invitation._meta.concrete_fields:
            setattr(obj, field.attname, getattr(form.sent, field.attname))

    @admin.action(permissions=["view"], description="Withdraw selected pending invitations")
    def withdraw(self, request, queryset):
        withdrawn = 0
        for invitation in queryset.pending():
            try:
                organizations.withdraw(invitation, request.user, request=request)
            except PermissionDenied as exc:  # an owner's invitation, for owners only
                self.message_user(request, str(exc), messages.ERROR)
                continue
            withdrawn += 1
        self.message_user(request, f"Withdrew {withdrawn} invitation(s).")


class TeamMemberInline(OrganizationPartInline):
    model = TeamMember
    organization_action = OrgAction.MANAGE_TEAMS
    fields = ["user"]
    extra = 0

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user":
            # Members of the organisation only (of the managed ones, as the team is new).
            team = getattr(request, "_admin_team", None)
            managed = managed_organizations(request.user, OrgAction.MANAGE_TEAMS)
            organizations_ = [team.organization_id] if team else managed
            kwargs["queryset"] = User.objects.filter(
                organization_memberships__organization__in=organizations_
            ).distinct()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class TeamChannelInline(OrganizationPartInline):
    model = TeamChannel
    organization_action = OrgAction.MANAGE_TEAMS
    fields = ["channel", "role"]
    extra = 0

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "channel":
            team = getattr(request, "_admin_team", None)
            managed = managed_organizations(request.user, OrgAction.MANAGE_TEAMS)
            kwargs["queryset"] = Channel.objects.filter(
                organization__in=[team.organization_id] if team else managed
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Team)
class TeamAdmin(OrganizationOwnedAdmin):
    organization_action = OrgAction.MANAGE_TEAMS
    list_display = ["name", "organization", "created_at"]
    list_filter = [("organization", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "organization__name"]
    fields = ["organization", "name", "description"]
    inlines = [TeamMemberInline, TeamChannelInline]

    def get_readonly_fields(self, request, obj=None):
        return ["organization"] if obj is not None else []

    def get_inlines(self, request, obj):
        request._admin_team = obj
        return self.inlines if obj is not None else []

    def save_model(self, request, obj, form, change):
        if change:
            organizations.update_team(
                Team.objects.get(pk=obj.pk), request.user, name=obj.name,
                description=obj.description, request=request,
            )  # fmt: skip
            return
        obj.pk = organizations.create_team(
            obj.organization, obj.name, request.user, description=obj.description,
            request=request,
        ).pk  # fmt: skip

    def save_formset(self, request, form, formset, change):
        # Through the rules, so each change is audited and checked.
        team = form.instance
        new = [r for r in formset.forms if r.instance.pk is None and r.has_changed()]
        changed = [r for r in formset.forms if r.instance.pk is not None and r.has_changed()]
        for row in formset.deleted_forms:
            if row.instance.pk is None:
                continue
            if formset.model is TeamMember:
                organizations.remove_team_member(
                    team, row.instance.user, request.user, request=request
                )
            else:
                organizations.remove_team_channel(
                    team, row.instance.channel, request.user, request=request
                )
        for row in formset.forms:
            if formset._should_delete_form(row) or not row.has_changed():
                continue
            data = row.cleaned_data
            if formset.model is TeamMember:
                if row.instance.pk is not None:
                    organizations.remove_team_member(
                        team, TeamMember.objects.get(pk=row.instance.pk).user, request.user,
                        request=request,
                    )  # fmt: skip
                organizations.add_team_member(team, data["user"], request.user, request=request)
            else:
                if row.instance.pk is not None:
                    previous = TeamChannel.objects.get(pk=row.instance.pk).channel
                    if previous != data["channel"]:
                        organizations.remove_team_channel(
                            team, previous, request.user, request=request
                        )
                organizations.set_team_channel_role(
                    team, data["channel"], data["role"], request.user, request=request
                )
        _saved(formset, [r for r in changed if not formset._should_delete_form(r)], new)

    def delete_model(self, request, obj):
        organizations.delete_team(obj, request.user, request=request)

    def delete_queryset(self, request, queryset):
        for team in queryset:
            self.delete_model(request, team)

    def get_deleted_objects(self, objs, request):
        deleted, counts, _perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, set(), protected
