from django.contrib import admin, messages
from django.contrib.admin import actions as django_actions
from django.contrib.admin import helpers
from django.template.response import TemplateResponse

from accounts.errors import DomainError
from channels_app.admin import ChannelAdmin, count_per_channel
from channels_app.models import Channel
from packages_app.files import deleting, labels, yanking
from packages_app.files.changes import file_change
from packages_app.models import PackageFile, SubdirIndex
from registry.adminsite import ChannelOwnedAdmin


class ChannelWithPackagesAdmin(ChannelAdmin):
    """channels_app's channel admin with what this app keeps of a channel: the number of
    its package files, and an action that rebuilds its indexes. Registered in its place."""

    list_display = ["name", "private", "member_count", "file_count", "created_by", "created_at"]
    actions = ["reindex"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(file_total=count_per_channel(PackageFile))

    @admin.display(description="files", ordering="file_total")
    def file_count(self, channel):
        return channel.file_total

    @admin.action(permissions=["change"], description="Reindex selected channels")
    def reindex(self, request, queryset):
        with file_change(request=request) as change:
            for channel in queryset:
                change.rebuild_all(channel, None)  # every index the channel has
        indexes = len(change.revisions)
        self.message_user(
            request,
            f"Requested a full rebuild of {indexes} subdir index(es), labels included, in "
            f"{len(queryset)} channel(s).",
        )


admin.site.unregister(Channel)
admin.site.register(Channel, ChannelWithPackagesAdmin)


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
        "yanked_at",
        "labels_shown",
    ]
    list_filter = [
        "state",
        "subdir",
        "labels__label",
        ("channel", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["channel", "uploader"]
    search_fields = ["filename", "name", "version", "channel__name", "sha256"]
    readonly_fields = [f.name for f in PackageFile._meta.fields]
    actions = ["delete_selected", "yank_selected", "unyank_selected", "label_selected"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("labels")

    @admin.display(description="labels")
    def labels_shown(self, package_file):
        return ", ".join(package_file.label_names)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # every field is read-only: the file is what was uploaded

    # Named like Django's bulk delete so that it replaces it, confirmation page included;
    # the deletion itself goes through delete_queryset.
    @admin.action(permissions=["delete"], description="Delete selected package files and reindex")
    def delete_selected(self, request, queryset):
        return django_actions.delete_selected(self, request, queryset)

    @admin.action(permissions=["delete"], description="Yank selected package files")
    def yank_selected(self, request, queryset):
        """Asks for the reason on a page of its own, then yanks every file with it (all in
        one change)."""
        if "apply" in request.POST:
            try:
                with file_change(request=request) as change:
                    for package_file in change.lock_files(queryset):
                        yanking.yank(package_file, request.POST.get("reason"), within=change)
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(request, f"Yanked {len(queryset)} package files.")
                return None
        return self._ask(
            request, queryset, "Yank package files", "yank.html",
            max_length=yanking.REASON_MAX_LENGTH,
        )  # fmt: skip

    @admin.action(permissions=["delete"], description="Un-yank selected package files")
    def unyank_selected(self, request, queryset):
        with file_change(request=request) as change:
            for package_file in change.lock_files(queryset):
                yanking.unyank(package_file, within=change)
        self.message_user(request, f"Un-yanked {len(queryset)} package files.")

    @admin.action(permissions=["delete"], description="Add or remove labels of selected files")
    def label_selected(self, request, queryset):
        """Asks which labels to add and remove on a page of its own, then changes every file
        (all or none: a file that would be left without a label stops the whole change)."""
        if "apply" in request.POST:
            try:
                with file_change(request=request) as change:
                    for package_file in change.lock_files(queryset):
                        labels.change(
                            package_file,
                            add=request.POST.get("add", ""),
                            remove=request.POST.get("remove", ""),
                            within=change,
                        )
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(request, f"Changed the labels of {len(queryset)} package files.")
                return None
        return self._ask(request, queryset, "Labels of package files", "labels.html")

    def _ask(self, request, queryset, title, template, **extra):
        """The page of an action that asks something (a reason, labels) about ``queryset``
        before applying it: ``template`` in admin/packages_app/packagefile/."""
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "files": queryset,
            "opts": self.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            **extra,
        }
        return TemplateResponse(request, f"admin/packages_app/packagefile/{template}", context)

    def delete_model(self, request, obj):
        deleting.delete_package_file(obj, request=request)

    def delete_queryset(self, request, queryset):
        with file_change(request=request) as change:
            for package_file in change.lock_files(queryset):
                deleting.delete_package_file(package_file, within=change)


@admin.register(SubdirIndex)
class SubdirIndexAdmin(admin.ModelAdmin):
    list_display = [
        "channel",
        "label",
        "subdir",
        "requested_revision",
        "built_revision",
        "published_at",
        "rebuild_count",
    ]
    readonly_fields = [f.name for f in SubdirIndex._meta.fields]

    def has_add_permission(self, request):
        return False
