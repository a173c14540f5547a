from django.contrib import admin

from . import uploads
from .models import PackageFile, SubdirIndex


@admin.register(PackageFile)
class PackageFileAdmin(admin.ModelAdmin):
    list_display = ["filename", "channel", "subdir", "state", "size", "uploader", "uploaded_at"]
    list_filter = ["state", "subdir"]
    search_fields = ["filename", "name", "channel__name", "sha256"]
    readonly_fields = [f.name for f in PackageFile._meta.fields]

    def has_add_permission(self, request):
        return False

    def delete_model(self, request, obj):
        uploads.delete_package_file(obj)

    def delete_queryset(self, request, queryset):
        for package_file in queryset:
            uploads.delete_package_file(package_file)


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
