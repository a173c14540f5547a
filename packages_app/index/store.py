"""Where the index files of one (channel, label, subdir) are stored, and writing them."""

import hashlib
import logging
import threading

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from channels_app.models import Channel
from packages_app import storage
from packages_app.index import current, repodata
from packages_app.models import MAIN_LABEL, SubdirIndex

log = logging.getLogger(__name__)
# Index files of subdirs without packages, the same for every channel: (storage, subdir)
# -> their published_files entries.
_EMPTY = {}
_EMPTY_LOCK = threading.Lock()


def index_folder(channel_id, subdir, label=MAIN_LABEL):
    """Where the index files of one (channel, label, subdir) are stored.

    ``main`` keeps the folder it had before labels existed; other labels sit beside the
    subdirs, under ``label/`` (never a subdir's name).
    """
    if label == MAIN_LABEL:
        return f"index/{channel_id}/{subdir}"
    return f"index/{channel_id}/label/{label}/{subdir}"


def shard_path(channel_id, subdir, digest_hex, label=MAIN_LABEL):
    return f"{index_folder(channel_id, subdir, label)}/shards/{digest_hex}.msgpack.zst"


def save(folder, name, data):
    """Store one index file; return its entry of ``SubdirIndex.published_files``."""
    path = default_storage.save(f"{folder}/{name}", ContentFile(data))
    return {
        "path": path,
        "etag": hashlib.sha256(data).hexdigest()[:32],
        "size": len(data),
        "at": timezone.now().isoformat(),
    }


def stored_whole(path, size):
    """Whether the shard at ``path`` is there with all its ``size`` bytes.

    Shards are named by their hash and never change, but a worker killed while writing
    one leaves it short; no published index refers to it yet, so it is written again.
    """
    try:
        if default_storage.size(path) == size:
            return True
    except FileNotFoundError:
        return False
    log.warning("shard %s is incomplete (its writer was interrupted); writing it again", path)
    default_storage.delete(path)
    return False


def save_shard(channel_id, subdir, records, name, compressor, label=MAIN_LABEL):
    """Store the CEP-16 shard of one name of ``records`` unless it is stored whole
    already (shards are named by their hash); ``(hex digest, whether it was written)``."""
    data = repodata.shard(records.records_of(name), compressor, records.removed_of(name))
    digest = repodata.shard_digest(data)
    path = shard_path(channel_id, subdir, digest, label)
    if stored_whole(path, len(data)):
        return digest, False
    default_storage.save(path, ContentFile(data))
    return digest, True


def save_index_files(folder, subdir, records, digests):
    """Store repodata.json, its .zst, the shard index (``digests``: {name: hex sha256})
    and current_repodata.json (+ .zst) of ``records`` in ``folder``; return their
    ``published_files`` entries (the .bz2 follows in a job of its own)."""
    raw = records.repodata_json()
    newest = current.current_repodata_json(records)
    documents = {
        repodata.REPODATA: raw,
        repodata.REPODATA_ZST: repodata.zstd_compress(raw),
        repodata.SHARD_INDEX: repodata.shard_index(subdir, digests),
        repodata.CURRENT_REPODATA: newest,
        repodata.CURRENT_REPODATA_ZST: repodata.zstd_compress(newest),
    }
    return {name: save(folder, name, data) for name, data in documents.items()}


def empty_index_files(subdir):
    """``published_files`` entries of the index files of a ``subdir`` without packages.

    Every platform subdir of a channel answers, so that clients find an empty subdir
    instead of falling back or failing. The files are the same for every channel; they
    are stored once, under a folder named by their content (so that a reader of the
    storage, nginx after X-Accel-Redirect included, finds them as it finds every index
    file), and their entries kept per process.
    """
    key = (_storage_key(), subdir)
    found = _EMPTY.get(key)
    if found is not None:
        return found
    with _EMPTY_LOCK:
        if key not in _EMPTY:
            entries = {}
            for name, data in repodata.empty_index(subdir).items():
                etag = hashlib.sha256(data).hexdigest()[:32]
                path = f"index/empty/{subdir}/{etag}/{name}"
                if not _stored(path, len(data)):
                    path = default_storage.save(path, ContentFile(data))
                entries[name] = {"path": path, "etag": etag, "size": len(data)}
            _EMPTY[key] = entries
    return _EMPTY[key]


def _stored(path, size):
    try:
        return default_storage.size(path) == size
    except FileNotFoundError:
        return False


def _storage_key():
    """What tells one configured storage from another (a directory, a bucket)."""
    return (
        default_storage.__class__.__name__,  # the configured class: LazyObject passes it on
        str(getattr(default_storage, "location", "")),
        getattr(default_storage, "bucket_name", ""),
    )


def forget_if_deleted(index):
    """Whether ``index`` was deleted (with its channel) while files were written for it;
    if so, delete everything stored for it.

    The channel's deletion removes its stored files once it commits, but a build or a
    compression running then may write after that, and nothing would refer to what it
    wrote. Checked after writing, so one of the two always sees the other's files.
    """
    if SubdirIndex.objects.filter(pk=index.pk).exists():
        return False
    log.info(
        "%s/%s (label %s) was deleted while being written; deleting what was written",
        index.channel_id, index.subdir, index.label,
    )  # fmt: skip
    folder = index_folder(index.channel_id, index.subdir, index.label)
    if not Channel.objects.filter(pk=index.channel_id).exists():
        folder = index_folder(index.channel_id, "").rstrip("/")  # the channel's, folders too
    storage.delete_tree(folder)
    return True
