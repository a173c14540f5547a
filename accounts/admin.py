"""The admin of users, API tokens and the audit log. Organisations, invitations and teams
are administered by channels_app.orgs.admin, with their rules."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from . import audit, tokens
from .models import ApiToken, AuditEvent, User


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
