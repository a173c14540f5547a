from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.forms import BaseInlineFormSet, ModelForm

from channels_app.models import Channel, TeamChannel
from registry.adminsite import OrganizationOwnedAdmin, OrganizationPartInline, owned_organizations

from . import audit, organizations, tokens
from .models import (
    ApiToken,
    AuditEvent,
    Invitation,
    Organization,
    OrganizationMember,
    OrgRole,
    Team,
    TeamMember,
    User,
)


@admin.register(User)
class WharfUserAdmin(UserAdmin):
    # A disabled, demoted or deleted account's cached tokens stop working at once here.
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        tokens.cache.forget_user(obj.pk)

    def delete_model(self, request, obj):
        pk = obj.pk
        super().delete_model(request, obj)
        tokens.cache.forget_user(pk)

    def delete_queryset(self, request, queryset):
        pks = list(queryset.values_list("pk", flat=True))
        super().delete_queryset(request, queryset)
        for pk in pks:
            tokens.cache.forget_user(pk)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "user",
        "hint",
        "read_only",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["read_only"]
    search_fields = ["name", "user__username", "hint"]
    # Revoked by the action below, so that each revocation is in the audit log.
    readonly_fields = ["digest", "hint", "created_at", "last_used_at", "revoked_at"]
    autocomplete_fields = ["user"]
    filter_horizontal = ["channels"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        # A token's secret is shown once, by the API or `manage.py create_token`.
        return False

    # A changed or deleted token is read again (or refused) at once by this process.
    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)  # after save_model: channels
        tokens.cache.discard(form.instance.digest)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        tokens.cache.discard(obj.digest)

    def delete_queryset(self, request, queryset):
        digests = list(queryset.values_list("digest", flat=True))
        super().delete_queryset(request, queryset)
        for digest in digests:
            tokens.cache.discard(digest)

    @admin.action(permissions=["change"], description="Revoke selected tokens")
    def revoke(self, request, queryset):
        revoked = 0
        for token in queryset:
            if token.revoke():
                audit.record("token.revoked", request=request, **audit.token_details(token))
                revoked += 1
        self.message_user(request, f"Revoked {revoked} token(s).")


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Every event, read only, for superusers (owners read their channel's on its page)."""

    list_display = ["created_at", "action", "actor_name", "token_hint", "channel_name", "address"]
    list_filter = ["action"]
    search_fields = ["actor_name", "channel_name", "token_hint", "address"]
    date_hierarchy = "created_at"
    fields = list_display + ["details"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# -- organisations: for their owners (registry.adminsite.OrganizationOwnedAdmin) ------------


class OrganizationMemberFormSet(BaseInlineFormSet):
    def clean(self):
        super().clean()
        if any(self.errors):
            return
        kept = [form.cleaned_data for form in self.forms if form.cleaned_data]
        kept = [row for row in kept if not row.get("DELETE")]
        if not any(row["role"] == OrgRole.OWNER for row in kept):
            raise ValidationError(organizations.KEEP_AN_OWNER)


class OrganizationMemberInline(OrganizationPartInline):
    """Roles of the members; people join by accepting an invitation, never added here."""

    model = OrganizationMember
    formset = OrganizationMemberFormSet
    fields = ["user", "role", "created_at"]
    readonly_fields = ["user", "created_at"]
    extra = 0

    def has_add_permission(self, request, obj=None):
        return False


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

    def get_deleted_objects(self, objs, request):
        deleted, counts, _perms_needed, protected = super().get_deleted_objects(objs, request)
        # Its owner deletes everything in it; channels are protected and stop the deletion.
        return deleted, counts, set(), protected

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
            organizations.withdraw(invitation, request.user, request=request)
            withdrawn += 1
        self.message_user(request, f"Withdrew {withdrawn} invitation(s).")


class TeamMemberInline(OrganizationPartInline):
    model = TeamMember
    fields = ["user"]
    extra = 0

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user":
            # Members of the organisation only (of the owned ones, as the team is new).
            team = getattr(request, "_admin_team", None)
            owned = owned_organizations(request.user)
            organizations_ = [team.organization_id] if team else owned
            kwargs["queryset"] = User.objects.filter(
                organization_memberships__organization__in=organizations_
            ).distinct()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class TeamChannelInline(OrganizationPartInline):
    model = TeamChannel
    fields = ["channel", "role"]
    extra = 0

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "channel":
            team = getattr(request, "_admin_team", None)
            owned = owned_organizations(request.user)
            kwargs["queryset"] = Channel.objects.filter(
                organization__in=[team.organization_id] if team else owned
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Team)
class TeamAdmin(OrganizationOwnedAdmin):
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
