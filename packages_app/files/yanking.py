"""Yanking: taking a package file out of the channel's index while keeping it downloadable.

A yanked file is listed in repodata's ``removed`` (and its shard's), so solvers no longer
choose it, but environments locked to its URL still install. Un-yanking puts it back.
"""

from django.utils import timezone

from accounts.errors import DomainError
from packages_app.files.changes import file_change
from packages_app.models import PackageFile

REASON_MAX_LENGTH = PackageFile._meta.get_field("yank_reason").max_length


class YankError(DomainError):
    """A yank refused for its reason; the REST API names the field ``reason``."""

    field = "reason"


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


def yank(package_file, reason, *, request=None, within=None):
    """Yank the file with ``reason`` (a yanked file gets the new reason).

    ``within``: an open :class:`~packages_app.files.changes.FileChange` to take part in.
    """
    reason = clean_reason(reason)
    fields = {"yanked_at": timezone.now(), "yank_reason": reason}
    _change(package_file, "package.yanked", fields, request=request, within=within)


def unyank(package_file, *, request=None, within=None):
    """Put a yanked file back into the index; a file that is not yanked stays as it is."""
    fields = {"yanked_at": None, "yank_reason": ""}
    _change(package_file, "package.unyanked", fields, request=request, within=within)


def _change(package_file, action, fields, *, request, within):
    with file_change(request=request, within=within) as change:
        locked = change.lock_file(package_file)
        if action == "package.unyanked" and not locked.yanked:
            return
        PackageFile.objects.filter(pk=locked.pk).update(**fields)
        for field, value in fields.items():
            setattr(package_file, field, value)
        details = {"subdir": package_file.subdir, "filename": package_file.filename}
        if fields["yank_reason"]:
            details["reason"] = fields["yank_reason"]
        change.audit(action, package_file.channel, **details)
        # Yanked or not, the file stays in every label it carries: each index changes.
        change.touch_file(package_file)
