"""One unit of work for every change of a channel's package files.

Uploading, replacing, deleting, yanking, labelling and importing package files, and
asking for a reindex, all do the same around their own edit: in one transaction, lock
the rows the edit reads, make the edit, record it in the audit log, refresh the catalog
rows of the package names it touched and request the rebuild of every (subdir, label)
index it touched. :func:`file_change` does that part, once::

    with file_change(request=request) as change:
        package_file = change.lock_file(package_file)
        ...  # the edit itself
        change.touch_file(package_file)
        change.audit("package.yanked", package_file.channel, subdir=..., filename=...)

If the body raises, nothing of it stays: no audit event, no rebuild request.

**Lock order.** A change takes its locks in this order, and in no other:

1. the channel row, ``FOR NO KEY UPDATE`` (:meth:`FileChange.lock_channel`), by changes
   that add bytes: uploads and imports serialize on it so that together they cannot pass
   the channel's quota. ``NO KEY`` lets the foreign-key checks (``FOR KEY SHARE``) of
   rows inserted for the channel elsewhere (audit events, catalog rows) pass;
2. package file rows, ``FOR UPDATE`` in primary-key order (:meth:`FileChange.lock_files`),
   so that two changes of the same files never hold them crosswise;
3. subdir index rows: each rebuild request updates its (subdir, label) row's revision,
   in (channel, subdir, label) order;
4. the catalog's advisory lock per package name, in name order (``catalog.refresh``).

Steps 1 and 2 are taken in the body, and a channel lock asked for after a file lock is a
programming error (RuntimeError); steps 3 and 4 happen only when the body is done, so no
edit can take them early. Index publishing (``index.publishing.publish``) locks package
file rows and then its index row: a change that held an index row while waiting for a
file row could deadlock with it, which this order rules out. Catalog locks come last
because nothing that holds one waits for anything else. The audit events are inserted
after all of them; their foreign-key check on the channel row is a ``KEY SHARE`` that no
change blocks.
"""

import contextlib

from django.db import transaction

from accounts import audit
from accounts.errors import DomainError
from channels_app.models import Channel
from packages_app.discovery import catalog
from packages_app.index import rebuilds
from packages_app.models import MAIN_LABEL, PackageFile, SubdirIndex

_CHANNEL, _FILES = 1, 2


class FileGone(DomainError):
    """The package file was deleted by another request meanwhile."""

    status = 404


@contextlib.contextmanager
def file_change(*, request=None, actor=None, enqueue=True, within=None):
    """A :class:`FileChange` in a transaction of its own; its rebuild requests, catalog
    refreshes and audit events happen when the block ends without an error.

    ``request`` (or ``actor``) is who acts, for the audit log. Without ``enqueue`` the
    rebuilds are recorded but not started (an import starts them once at its end).
    ``within``: an open change to take part in (several edits as one, e.g. an admin
    action on many files); it is yielded as it is and finishes with its own block.
    """
    if within is not None:
        yield within
        return
    with transaction.atomic():
        change = FileChange(request=request, actor=actor, enqueue=enqueue)
        yield change
        change.finish()


def reindex(channel, subdir=None, *, request=None):
    """Rebuild from scratch every label index of ``subdir`` (main's included), or with
    None every index the channel has; return ``{(subdir, label): requested revision}``."""
    with file_change(request=request) as change:
        change.rebuild_all(channel, subdir)
    return {
        (subdir, label): revision
        for (channel_id, subdir, label), revision in change.revisions.items()
        if channel_id == channel.pk
    }


class FileChange:
    def __init__(self, *, request=None, actor=None, enqueue=True):
        self.request = request
        self.actor = actor if actor is not None and actor.is_authenticated else None
        self.enqueue = enqueue
        self.revisions = {}  # (channel id, subdir, label) -> requested revision, once done
        self._locked = 0
        self._channels = {}  # id -> channel
        self._indexes = {}  # (channel id, subdir, label) -> names changed there
        self._full = set()  # (channel id, subdir) to rebuild from scratch, every label
        self._catalog = {}  # channel id -> names whose catalog rows to refresh
        self._events = []  # (action, channel, details)
        self._finished = False

    # -- locks, in their order -----------------------------------------------------------

    def lock_channel(self, channel):
        """Lock the channel row (step 1); return it read afresh (its quota, say)."""
        if self._locked > _CHANNEL:
            raise RuntimeError("Lock the channel before package files (files/changes.py).")
        self._locked = _CHANNEL
        return Channel.objects.select_for_update(no_key=True).get(pk=channel.pk)

    def lock_files(self, files):
        """Lock the package file rows of the queryset ``files`` (step 2), in primary-key
        order; return them, read afresh."""
        self._locked = _FILES
        # By primary key, so that a queryset with joins or DISTINCT (an admin filter)
        # locks exactly the file rows.
        chosen = PackageFile.objects.filter(pk__in=files.values("pk"))
        locked = chosen.select_for_update(of=("self",)).select_related("channel")
        return list(locked.order_by("pk"))

    def lock_file(self, package_file):
        """Lock one package file's row; return it read afresh (:class:`FileGone` once
        another request deleted it)."""
        found = self.lock_files(PackageFile.objects.filter(pk=package_file.pk))
        if not found:
            raise FileGone(
                f"{package_file.subdir}/{package_file.filename} is no longer in channel "
                f"'{package_file.channel.name}': it was deleted meanwhile."
            )
        return found[0]

    # -- what the change touched ---------------------------------------------------------

    def touch(self, channel, subdir, names, labels, *, in_catalog=True):
        """``names`` changed in ``subdir`` of ``channel``, in the indexes of ``labels``:
        request their rebuilds and, ``in_catalog`` (not for label changes, which the
        catalog does not show), refresh the names' catalog rows."""
        self._channels[channel.pk] = channel
        for label in labels:
            self._indexes.setdefault((channel.pk, subdir, label), set()).update(names)
        if in_catalog:
            self._catalog.setdefault(channel.pk, set()).update(names)

    def touch_file(self, package_file, labels=None, *, in_catalog=True):
        """:meth:`touch` for one file, in ``labels`` (default: those it carries now)."""
        if labels is None:
            labels = package_file.labels.values_list("label", flat=True)
        self.touch(
            package_file.channel,
            package_file.subdir,
            [package_file.name],
            labels,
            in_catalog=in_catalog,
        )

    def rebuild_all(self, channel, subdir=None):
        """Rebuild from scratch every label index of ``subdir`` (main's included), or
        with None every index the channel has (a reindex)."""
        self._channels[channel.pk] = channel
        self._full.add((channel.pk, subdir))

    def audit(self, action, channel, **details):
        """Record ``action`` in the audit log when the change is done."""
        self._events.append((action, channel, details))

    # -- the end -------------------------------------------------------------------------

    def finish(self):
        """Steps 3 and 4, then the audit events; :func:`file_change` calls it."""
        if self._finished:
            raise RuntimeError("This change is finished; start another.")
        self._finished = True
        indexes = {key: (names, False) for key, names in self._indexes.items()}
        for channel_id, subdir in self._full:
            existing = SubdirIndex.objects.filter(channel_id=channel_id)
            keys = []
            if subdir is not None:
                existing = existing.filter(subdir=subdir)
                keys.append((channel_id, subdir, MAIN_LABEL))
            keys += [(channel_id, *found) for found in existing.values_list("subdir", "label")]
            for key in keys:
                indexes[key] = (indexes.get(key, (set(), True))[0], True)
        for key in sorted(indexes):
            channel_id, subdir, label = key
            names, full = indexes[key]
            self.revisions[key] = rebuilds.request_rebuild(
                self._channels[channel_id], subdir, names, label=label, full=full,
                enqueue=self.enqueue,
            )  # fmt: skip
        for channel_id, names in sorted(self._catalog.items()):
            catalog.refresh(self._channels[channel_id], names)
        if self._events:
            audit.record_all(self._events, actor=self.actor, request=self.request)
