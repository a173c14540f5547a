"""Yanking: taking a package file out of the channel's index while keeping it downloadable.

A yanked file is listed in repodata's ``removed`` (and its shard's), so solvers no longer
choose it, but environments locked to its URL still install. Un-yanking puts it back.
"""

from django.db import transaction
from django.utils import timezone

from accounts import audit
from packages_app.discovery import catalog
from packages_app.index import rebuilds
from packages_app.models import PackageFile

REASON_MAX_LENGTH = 500


class YankError(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.message = message


def clean_reason(reason):
    """The reason, stripped; YankError when it is missing or too long."""
    reason = reason.strip() if isinstance(reason, str) else ""
    if not reason:
        raise YankError("Give a reason for yanking, e.g. 'broken build: crashes on import'.")
    if len(reason) > REASON_MAX_LENGTH:
        raise YankError(
            f"The reason is {len(reason)} characters long; at most {REASON_MAX_LENGTH}."
        )
    return reason


def yank(package_file, reason, *, request=None):
    """Yank the file with ``reason`` (a yanked file gets the new reason)."""
    reason = clean_reason(reason)
    fields = {"yanked_at": timezone.now(), "yank_reason": reason}
    _change(package_file, "package.yanked", fields, request=request)


def unyank(package_file, *, request=None):
    """Put a yanked file back into the index; a file that is not yanked stays as it is."""
    if package_file.yanked:
        fields = {"yanked_at": None, "yank_reason": ""}
        _change(package_file, "package.unyanked", fields, request=request)


def _change(package_file, action, fields, *, request):
    with transaction.atomic():
        PackageFile.objects.filter(pk=package_file.pk).update(**fields)
        for field, value in fields.items():
            setattr(package_file, field, value)
        details = {"subdir": package_file.subdir, "filename": package_file.filename}
        if fields["yank_reason"]:
            details["reason"] = fields["yank_reason"]
        audit.record(action, channel=package_file.channel, request=request, **details)
        catalog.refresh(package_file.channel, [package_file.name])
        # Yanked or not, the file stays in every label it carries: each index changes.
        rebuilds.request_rebuilds(
            package_file.channel,
            package_file.subdir,
            [package_file.name],
            package_file.labels.values_list("label", flat=True),
        )
