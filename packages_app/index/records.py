"""The records of recently built subdirs, kept per process, and reloading what changed."""

import threading
from collections import OrderedDict

from django.conf import settings

from packages_app.models import PackageFile

# Package files in these states are published.
LIVE_STATES = (PackageFile.State.PENDING, PackageFile.State.INDEXED)
# Beyond this many changed names a rebuild reloads the whole subdir in one query.
FULL_RELOAD_NAMES = 2000


class RecordSetCache:
    """Recently built subdirs' records, per process, bounded by their size in bytes."""

    def __init__(self):
        self._entries = OrderedDict()  # index pk -> (revision, RecordSet)
        self._lock = threading.Lock()

    def take(self, index_pk):
        """Remove and return ``(revision, records)``, or ``(-1, None)``.

        Taken out while in use, so that a failed rebuild can never leave a half-updated
        set behind.
        """
        with self._lock:
            return self._entries.pop(index_pk, (-1, None))

    def put(self, index_pk, revision, records):
        limit = settings.WHARF_INDEX_CACHE_BYTES
        with self._lock:
            self._entries[index_pk] = (revision, records)
            while self._entries and sum(r.size for _, r in self._entries.values()) > limit:
                self._entries.popitem(last=False)

    def clear(self):
        with self._lock:
            self._entries.clear()


record_sets = RecordSetCache()


def _chunks(items, size):
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def load(index, records, names):
    """Refresh ``records`` for ``names`` (None: everything) from the files that carry the
    index's label; return pending file ids."""
    live = PackageFile.objects.filter(
        channel_id=index.channel_id,
        subdir=index.subdir,
        state__in=LIVE_STATES,
        labels__label=index.label,
    )
    fields = ("pk", "filename", "name", "record_json", "yanked_at", "state")
    pending = []

    def rows(queryset):
        for pk, filename, name, record_json, yanked_at, state in queryset:
            if state == PackageFile.State.PENDING:
                pending.append(pk)
            yield filename, name, record_json, yanked_at

    if names is None:
        all_rows = live.values_list(*fields).iterator(chunk_size=5000)
        records.replace_names(list(records.names), rows(all_rows))
    else:
        for chunk in _chunks(names, 500):
            records.replace_names(chunk, rows(live.filter(name__in=chunk).values_list(*fields)))
    return pending
