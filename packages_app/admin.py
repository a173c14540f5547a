from django.contrib import admin
from django.contrib.admin import actions as django_actions
from django.db import transaction

from registry.adminsite import ChannelOwnedAdmin

from . import uploads
from .models import PackageFile, SubdirIndex


@admin.register(PackageFile)
class PackageFileAdmin(ChannelOwnedAdmin):
    list_display = [
        "channel",
        "subdir",
        "filename",
        "version",
        "size",
        "state",
        "uploader",
        "uploaded_at",
    ]
    list_filter = ["state", "subdir", ("channel", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["channel", "uploader"]
    search_fields = ["filename", "name", "version", "channel__name", "sha256"]
    readonly_fields = [f.name for f in PackageFile._meta.fields]
    actions = ["delete_selected"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # every field is read-only: the file is what was uploaded

    # Named like Django's bulk delete so that it replaces it, confirmation page included;
    # the deletion itself goes through delete_queryset.
    @admin.action(permissions=["delete"], description="Delete selected package files and reindex")
    def delete_selected(self, request, queryset):
        return django_actions.delete_selected(self, request, queryset)

    def delete_model(self, request, obj):
        uploads.delete_package_file(obj, request=request)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for package_file in queryset:
                uploads.delete_package_file(package_file, request=request)


@admin.register(SubdirIndex)
class SubdirIndexAdmin(admin.ModelAdmin):
    list_display = [
        "channel",
        "subdir",
        "requested_revision",
        "built_revision",
        "published_at",
        "rebuild_count",
    ]
    readonly_fields = [f.name for f in SubdirIndex._meta.fields]

    def has_add_permission(self, request):
        return False
