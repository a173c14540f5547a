"""Deleting a package file: its row now, its stored bytes once that commits (recorded,
so that they go even if this process dies first: packages_app/staging.py)."""

from packages_app import staging
from packages_app.files.changes import file_change
from packages_app.models import PackageFile


def delete_package_file(package_file, *, request=None, within=None):
    """Delete the file, rebuild the indexes of every label it carried (audited).

    A file another request deleted meanwhile is left alone: nothing changes twice.
    ``within``: an open :class:`~packages_app.files.changes.FileChange` to take part in.
    """
    with file_change(request=request, within=within) as change:
        # Locked first, so that a label change waits and the labels read here are all.
        found = change.lock_files(PackageFile.objects.filter(pk=package_file.pk))
        if not found:
            return
        locked = found[0]
        file_labels = list(locked.labels.values_list("label", flat=True))
        locked.delete()
        change.touch_file(package_file, file_labels)
        change.audit(
            "package.deleted",
            package_file.channel,
            subdir=package_file.subdir,
            filename=package_file.filename,
            sha256=locked.sha256,
        )
        staging.discard_on_commit(package_file.channel, locked.storage_path)
