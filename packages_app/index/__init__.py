"""Keeping each (channel, label, subdir) index in step with its package files.

Each label of a channel has indexes of its own, built from the files that carry the label
(``main``: the channel's own URL; any other, ``/<channel>/label/<label>/``). Everything
here is per index, and so per label.

- :mod:`.rebuilds`: a change calls :func:`~.rebuilds.request_rebuild` inside its
  transaction; it raises the subdir's requested revision and marks the changed package
  names. After commit a background job runs :func:`~.rebuilds.rebuild_until_current`.
  Rebuilds of one subdir never overlap (a lease on its :class:`SubdirIndex` row) and
  coalesce: a rebuild publishes everything committed so far, so a burst of uploads causes
  a few rebuilds, not one each.
- :mod:`.records`: a rebuild is incremental. Each process keeps the records of recently
  built subdirs in memory and reloads from the database only the names that changed
  since. Archives are never re-read.
- :mod:`.publishing`: the new files are written to a fresh storage folder first, then one
  row update switches what is served. Only the shards of changed names are written;
  shards are named by their hash and never change. :mod:`.garbage` deletes the folders
  nothing serves any more.
- :mod:`.bz2_refresh`: repodata.json.bz2 follows in a job of its own.
- :mod:`.reconcile`: work whose job was lost (broker down, worker killed) is found in the
  database and sent again.
- :mod:`.store`: where index files are stored; :mod:`.repodata`: records to bytes.
- :mod:`.storage_check`: records held against what the store holds.
"""
