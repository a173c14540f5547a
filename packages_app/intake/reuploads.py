"""The one rule for a package file whose name its channel's subdir already holds.

Every upload route and every import follows it:

- the same bytes again (same file name, same sha256) change nothing and succeed, saying
  the file was already there: a retried CI job passes, without ``--skip-existing``;
- other bytes under the name are a conflict (409) that names both sha256 digests and how
  to replace the stored file; nothing changes;
- replacing is an action of its own, asked for with ``force`` (uploads only, with the
  permission to replace; the caller checks it) and audited as ``package.replaced``.

An upload names the labels it wants, and labels are not changed by uploading again: the
same bytes with other labels than the stored file carries are a conflict too, naming the
endpoint that changes labels. An upload that names no labels (and an import) asks for
none, so it matches whatever the file carries.
"""

import enum

from accounts.errors import DomainError


class Outcome(enum.Enum):
    NEW = "new"  # no file of that name: store it
    ALREADY_THERE = "already there"  # the same bytes: change nothing, succeed
    REPLACE = "replace"  # other bytes, with force: replace the stored file


class Conflict(DomainError):
    """The name is taken by a file that an upload or import may not silently change."""

    status = 409


# How the stored file can be replaced, for the conflict's message.
BY_FORCE = "Upload it with ?force=true (channel owners) to replace the stored file."
BY_DELETING = "Delete it first to replace it."


def judge(channel, subdir, filename, sha256, stored_sha256, *, force=False, labels=None,
          stored_labels=(), how_to_replace=BY_FORCE):  # fmt: skip
    """The :class:`Outcome` of a file with ``sha256`` arriving as ``filename`` in
    ``subdir`` of ``channel``, where the stored file of that name has ``stored_sha256``
    (None: there is none) and carries ``stored_labels``.

    ``labels``: the labels an upload names (None: none). Raises :class:`Conflict`.
    """
    if stored_sha256 is None:
        return Outcome.NEW
    if force:
        return Outcome.REPLACE
    where = f"{channel.name}/{subdir}/{filename}"
    if stored_sha256 != sha256:
        raise Conflict(
            f"{where} is already in the channel with other content (sha256 {stored_sha256}, "
            f"this file {sha256}); the stored file was left as it is. {how_to_replace}"
        )
    if labels is not None and sorted(set(labels)) != sorted(stored_labels):
        raise Conflict(
            f"{where} is already in the channel with the same content (sha256 {sha256}) "
            f"and carries {', '.join(sorted(stored_labels))}, not {', '.join(sorted(labels))}; "
            "uploading it again does not change its labels. Change them with POST "
            f"/api/v1/channels/{channel.name}/files/{subdir}/{filename}/labels/."
        )
    return Outcome.ALREADY_THERE


def already_there(package_file):
    """What the answer to the same bytes again says."""
    return (
        f"{package_file.channel.name}/{package_file.subdir}/{package_file.filename} was "
        f"already in the channel with the same content (sha256 {package_file.sha256}); "
        "nothing changed."
    )
