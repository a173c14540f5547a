from django.contrib import admin

from . import lifecycle
from .models import Channel, Membership


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ["name", "private", "created_by", "created_at"]
    list_filter = ["private"]
    search_fields = ["name", "description"]
    inlines = [MembershipInline]
    readonly_fields = ["created_by", "created_at"]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        created = lifecycle.create_channel(
            request.user, obj.name, description=obj.description, private=obj.private
        )
        obj.pk = created.pk
        obj.created_by = created.created_by
        obj.created_at = created.created_at

    def delete_model(self, request, obj):
        lifecycle.delete_channel(obj)

    def delete_queryset(self, request, queryset):
        for channel in queryset:
            lifecycle.delete_channel(channel)
