from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from .models import ApiToken, User

admin.site.register(User, UserAdmin)


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
    readonly_fields = ["digest", "hint", "created_at", "last_used_at"]
    autocomplete_fields = ["user"]
    filter_horizontal = ["channels"]

    def has_add_permission(self, request):
        # A token's secret is shown once, by the API or `manage.py create_token`.
        return False
