from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.forms import BaseInlineFormSet, ModelForm

from accounts import audit
from accounts.authentication import Caller
from registry.adminsite import ChannelOwnedAdmin, ChannelPartInline

from . import lifecycle, members, related, sources
from .access import readable_channels
from .forms import AddMemberForm
from .members import KEEP_AN_OWNER, has_other_owner
from .models import Channel, CombinedMember, Kind, Membership, RelatedChannel, Role, Upstream
from .orgs import admin as orgs_admin  # noqa: F401 - registers the organisation admin


def count_per_channel(model):
    """A subquery: how many rows of ``model`` name each channel (for annotating)."""
    rows = model.objects.filter(channel=OuterRef("pk")).order_by().values("channel")
    return Coalesce(Subquery(rows.annotate(count=Count("pk")).values("count")), 0)


class MembershipFormSet(BaseInlineFormSet):
    def clean(self):
        super().clean()
        if any(self.errors):
            return
        if self.instance.organization_id is not None:
            return  # the organisation's owners own it (members.has_other_owner)
        had_owner = any(form.initial.get("role") == Role.OWNER for form in self.initial_forms)
        kept = [form.cleaned_data for form in self.forms if form.cleaned_data]
        kept = [row for row in kept if not row.get("DELETE")]
        if had_owner and not any(row["role"] == Role.OWNER for row in kept):
            raise ValidationError(KEEP_AN_OWNER)


class MembershipInline(ChannelPartInline):
    """Roles of the members; members are added on the Memberships page, by username."""

    model = Membership
    formset = MembershipFormSet
    fields = ["user", "role"]
    readonly_fields = ["user"]
    extra = 0

    def has_add_permission(self, request, obj=None):
        return False


class RelatedChannelFormSet(BaseInlineFormSet):
    caller = None  # set per request by RelatedChannelInline.get_formset

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        rows = [form.cleaned_data for form in self.forms if form.cleaned_data]
        rows = [row for row in rows if not row.get("DELETE")]
        rows.sort(key=lambda row: row["position"])
        # The same rules as the channel's settings page: readable, not itself, no repeats.
        lines = [row["target"].name if row.get("target") else row.get("url", "") for row in rows]
        related.parse(self.instance, "\n".join(lines), self.caller)


class RelatedChannelInline(ChannelPartInline):
    model = RelatedChannel
    fk_name = "channel"
    formset = RelatedChannelFormSet
    fields = ["position", "target", "url"]
    extra = 0
    max_num = related.MAX_RELATED
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "target":
            kwargs["queryset"] = readable_channels(Caller(request.user))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.caller = Caller(request.user)
        return formset


class UpstreamForm(ModelForm):
    """Checks an upstream's settings as the REST API does (channels_app.sources)."""

    def clean(self):
        data = super().clean()
        mode = self.instance.channel.kind
        given = {name: data[name] for name in sources.EDITABLE_FIELDS if name in data}
        given = {name: value for name, value in given.items() if value is not None}
        try:
            checked = sources.check_upstream({"url": self.instance.url, **given}, mode)
        except ValidationError as exc:
            raise ValidationError(exc.messages) from None
        return {**data, **{name: checked[name] for name in given}}


class UpstreamInline(ChannelPartInline):
    """Where a proxy or mirror channel's packages come from. Its URL is set when the
    channel is created (by a site administrator); its credentials are never shown. A
    mirror's filters may change: the next run copies (and, with removal, deletes) by them.
    """

    model = Upstream
    form = UpstreamForm
    can_delete = False
    extra = 0
    readonly_fields = ["url", "credentials", "last_refresh", "last_error"]

    def get_fields(self, request, obj=None):
        fields = ["url", "refresh_seconds", "credentials", "last_refresh", "last_error"]
        if obj is not None and obj.kind == Kind.MIRROR:
            fields[2:2] = ["platforms", "include", "exclude", "keep_versions", "remove_missing"]
        return fields

    @admin.display(description="credentials")
    def credentials(self, upstream):
        if upstream.token:
            return "a token (kept server-side, never shown)"
        if upstream.username or upstream.password:
            return "a username and password (kept server-side, never shown)"
        return "none"

    def has_add_permission(self, request, obj=None):
        return False


class CombinedMemberInline(ChannelPartInline):
    """The channels a combined channel serves, in priority order (set at creation)."""

    model = CombinedMember
    fk_name = "channel"
    fields = ["position", "member"]
    readonly_fields = ["position", "member"]
    can_delete = False
    extra = 0

    def has_add_permission(self, request, obj=None):
        return False


class ChannelAdminForm(ModelForm):
    """A new channel may proxy or mirror an upstream (site administrators only)."""

    upstream_mode = forms.ChoiceField(
        label="kind", required=False, initial=Kind.HOSTED,
        choices=[
            (Kind.HOSTED, "hosted (uploads)"),
            (Kind.PROXY, "proxy of an upstream channel"),
            (Kind.MIRROR, "mirror of an upstream channel"),
        ],
    )  # fmt: skip
    upstream_url = forms.URLField(
        label="upstream channel URL", required=False, assume_scheme="https",
        help_text="For a proxy or mirror: e.g. https://conda.anaconda.org/conda-forge",
    )  # fmt: skip

    class Meta:
        model = Channel
        fields = ["name", "description", "private", "organization", "quota_bytes"]

    def clean(self):
        data = super().clean()
        mode = data.get("upstream_mode") or Kind.HOSTED
        if mode == Kind.HOSTED:
            return data
        try:
            data["upstream"] = sources.check_upstream({"url": data.get("upstream_url")}, mode)
        except ValidationError as exc:
            self.add_error("upstream_url", exc)
        return data


@admin.register(Channel)
class ChannelAdmin(ChannelOwnedAdmin):
    """Channels, their members and related channels. packages_app registers a subclass in
    its place that adds what it keeps of a channel (file counts, reindexing)."""

    channel_path = "pk"
    form = ChannelAdminForm
    list_display = ["name", "kind", "private", "member_count", "created_by", "created_at"]
    list_filter = ["kind", "private"]
    search_fields = ["name", "description"]
    inlines = [UpstreamInline, CombinedMemberInline, RelatedChannelInline, MembershipInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("created_by")
            .annotate(member_total=count_per_channel(Membership))
        )

    @admin.display(description="members", ordering="member_total")
    def member_count(self, channel):
        return channel.member_total

    def get_readonly_fields(self, request, obj=None):
        fields = ["storage", "created_by", "created_at"]
        if not request.user.is_superuser:
            # Quotas are the site's to give; owners see theirs. A channel moves to an
            # organisation by a transfer, which checks rights in the organisation too.
            fields += ["quota_bytes", "organization"]
            if obj is not None:
                # Channel URLs carry the name: clients and environment files would break.
                fields.append("name")
        return fields

    @admin.display(description="storage used")
    def storage(self, channel):
        if channel.pk is None:
            return "-"
        quota = channel.effective_quota
        limit = f"{quota} bytes" if quota else "no limit"
        return f"{channel.storage_used()} bytes (quota: {limit})"

    def get_inlines(self, request, obj):
        # A new channel gets its owner from create_channel; the rest once it exists.
        if obj is None:
            return []
        shown = [RelatedChannelInline, MembershipInline]
        if obj.kind in (Kind.PROXY, Kind.MIRROR):
            shown.insert(0, UpstreamInline)
        if obj.kind == Kind.COMBINED:
            shown.insert(0, CombinedMemberInline)
        return shown

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        if obj is not None or not request.user.is_superuser:
            # Only site administrators set an upstream, and only when creating a channel.
            fields = [f for f in fields if f not in ("upstream_mode", "upstream_url")]
        return fields

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            audit.visibility_change(obj, form.initial.get("private", obj.private), request)
            return
        upstream = form.cleaned_data.get("upstream") if request.user.is_superuser else None
        with transaction.atomic():
            created = lifecycle.create_channel(
                request.user,
                obj.name,
                description=obj.description,
                private=obj.private,
                organization=obj.organization if request.user.is_superuser else None,
                request=request,
                kind=form.cleaned_data.get("upstream_mode") if upstream else Kind.HOSTED,
            )
            sources.attach(created, upstream=upstream)
        obj.pk = created.pk
        obj.created_by = created.created_by
        obj.created_at = created.created_at

    def get_deleted_objects(self, objs, request):
        deleted, counts, _perms_needed, protected = super().get_deleted_objects(objs, request)
        # Whoever may delete a channel deletes everything in it, index rows included,
        # which are not theirs to see on their own.
        return deleted, counts, set(), protected

    def delete_model(self, request, obj):
        lifecycle.delete_channel(obj, request=request)

    def delete_queryset(self, request, queryset):
        for channel in queryset:
            self.delete_model(request, channel)


class MembershipForm(ModelForm):
    # As on the channel's Members page: an exact username or e-mail, never a user list.
    user = AddMemberForm.base_fields["user"]
    clean_user = AddMemberForm.clean_user

    class Meta:
        model = Membership
        fields = ["channel", "user", "role"]

    def clean_role(self):
        role = self.cleaned_data["role"]
        was_owner = self.instance.pk is not None and self.instance.role == Role.OWNER
        if was_owner and role != Role.OWNER and not has_other_owner(self.instance):
            raise ValidationError(KEEP_AN_OWNER)
        return role


@admin.register(Membership)
class MembershipAdmin(ChannelOwnedAdmin):
    form = MembershipForm
    fields = ["channel", "user", "role", "created_at"]
    list_display = ["user", "channel", "role", "created_at"]
    list_filter = ["role", ("channel", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["user__username", "user__email", "channel__name"]
    list_select_related = ["user", "channel"]

    def get_readonly_fields(self, request, obj=None):
        # A membership is one person in one channel: only the role changes.
        return ["channel", "user", "created_at"] if obj is not None else ["created_at"]

    def get_actions(self, request):
        # One at a time, so that each removal can be checked against keeping an owner.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.role == Role.OWNER and not has_other_owner(obj):
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        if change:
            members.change_role(Membership.objects.get(pk=obj.pk), obj.role, request=request)
        else:
            obj.pk = members.add(obj.channel, obj.user, obj.role, request=request).pk

    def delete_model(self, request, obj):
        members.remove(obj, request=request)
