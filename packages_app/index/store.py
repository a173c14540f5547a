"""Where the index files of one (channel, label, subdir) are stored, and writing them."""

import hashlib
import logging

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from channels_app.models import Channel
from packages_app import storage
from packages_app.models import MAIN_LABEL, SubdirIndex

log = logging.getLogger(__name__)


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
