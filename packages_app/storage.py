"""Stored files where Django's storage API is not enough for a bucket.

Package and index files live in Django's default storage: a directory, or with
``S3_BUCKET`` an S3-compatible bucket (django-storages). For a bucket this module adds
reads that stream (django-storages' ``open()`` downloads the whole object before the
first byte), download URLs presigned for the address clients use, and deleting a folder
with one request per thousand objects.
"""

import contextlib
import errno
import logging
import os
import threading

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.files.storage import default_storage, storages
from storages.backends.s3 import S3Storage

log = logging.getLogger(__name__)
# What a store that fails raises: OSError from a directory, these from a bucket.
ERRORS = (OSError, BotoCoreError, ClientError)
BLOCK = 256 * 1024


def in_bucket():
    return isinstance(default_storage, S3Storage)


def is_full(exc):
    """Whether a failed store ran out of space (answered 507) rather than failing (503)."""
    if isinstance(exc, ClientError):
        return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 507
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


_clients = {}  # alias -> (the storage it was made for, its client)
_clients_lock = threading.Lock()


def client(alias="default"):
    """One boto3 S3 client per process for storage ``alias``, shared by its threads.

    django-storages builds a boto3 session and resource per thread (resources are not
    thread-safe), about 70 ms of CPU on each thread's first request; with gunicorn's
    threads that showed as a p99 above a second on index files after every start.
    boto3 clients are thread-safe, so the serving path shares one. A client belongs to
    the storage object it was made for: when Django's storages handler makes a new one
    (``STORAGES`` changed), a new client follows.
    """
    store = storages[alias]
    found = _clients.get(alias)
    if found is None or found[0] is not store:
        with _clients_lock:
            found = _clients.get(alias)
            if found is None or found[0] is not store:
                found = (
                    store,
                    store._create_session().client(
                        "s3",
                        region_name=store.region_name,
                        use_ssl=store.use_ssl,
                        endpoint_url=store.endpoint_url,
                        config=store.client_config,
                        verify=store.verify,
                    ),
                )
                _clients[alias] = found
    return found[1]


def size(path):
    """Bytes of a stored file; FileNotFoundError when there is none."""
    if not in_bucket():
        return default_storage.size(path)
    try:
        return client().head_object(Bucket=default_storage.bucket_name, Key=path)["ContentLength"]
    except ClientError as exc:
        raise _not_found(exc, path) from exc


def stream(path, byte_range=None):
    """The stored file ``path``, or its bytes ``(first, last)``, for a streaming response.

    A whole file in a directory is its open handle, which gunicorn sends with sendfile();
    anything else is an iterator of blocks read as they are sent.
    """
    if in_bucket():
        return _blocks(_object_body(path, byte_range))
    handle = default_storage.open(path, "rb")
    if byte_range is None:
        return handle
    first, last = byte_range
    handle.seek(first)
    return _blocks(handle, last - first + 1)


def blocks(path):
    """The stored file ``path`` as an iterator of blocks, from a directory or a bucket
    alike, never read whole; FileNotFoundError (at once) when there is none."""
    if in_bucket():
        return _blocks(_object_body(path))
    return _blocks(default_storage.open(path, "rb"))


def _object_body(path, byte_range=None):
    request = {"Bucket": default_storage.bucket_name, "Key": path}
    if byte_range is not None:
        request["Range"] = "bytes={}-{}".format(*byte_range)
    try:
        return client().get_object(**request)["Body"]
    except ClientError as exc:
        raise _not_found(exc, path) from exc


def _not_found(exc, path):
    """FileNotFoundError for a missing object; any other error as it is."""
    if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
        return FileNotFoundError(path)
    return exc


def _blocks(handle, length=None):
    try:
        while length is None or length > 0:
            data = handle.read(BLOCK if length is None else min(BLOCK, length))
            if not data:
                break
            if length is not None:
                length -= len(data)
            yield data
    finally:
        handle.close()


def download_url(path, filename):
    """A presigned GET of a stored package file, valid ``WHARF_PRESIGNED_URL_SECONDS``.

    Signed for ``S3_PUBLIC_ENDPOINT_URL`` when set: a signature covers the host name, so
    it must be the one clients connect to. The bucket names the download ``filename``.
    """
    return client("downloads").generate_presigned_url(
        "get_object",
        Params={
            "Bucket": default_storage.bucket_name,
            "Key": path,
            "ResponseContentDisposition": f'attachment; filename="{filename}"',
        },
        ExpiresIn=settings.WHARF_PRESIGNED_URL_SECONDS,
    )


def delete_bucket_folder(folder):
    """Delete every object below ``folder`` in the bucket, a thousand per request."""
    client = default_storage.connection.meta.client
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=default_storage.bucket_name, Prefix=folder.rstrip("/") + "/"
    )
    for page in pages:
        keys = [{"Key": entry["Key"]} for entry in page.get("Contents", ())]
        if not keys:
            continue
        answer = client.delete_objects(
            Bucket=default_storage.bucket_name, Delete={"Objects": keys, "Quiet": True}
        )
        for error in answer.get("Errors", ()):
            log.warning("could not delete %s: %s", error.get("Key"), error.get("Message"))


def delete_tree(folder):
    """Delete every stored file below ``folder``."""
    if in_bucket():
        delete_bucket_folder(folder)
        return
    try:
        folders, names = default_storage.listdir(folder)
    except (FileNotFoundError, OSError):
        return
    for sub in folders:
        delete_tree(f"{folder}/{sub}")
    for name in names:
        default_storage.delete(f"{folder}/{name}")
    remove_empty_local_folder(folder)


def delete_package_object(storage_path):
    """Delete a stored package file and its folder (each accepted upload has its own)."""
    default_storage.delete(storage_path)
    remove_empty_local_folder(storage_path.rsplit("/", 1)[0])


def remove_empty_local_folder(folder):
    # Object stores have no folders; a local directory would otherwise stay behind.
    with contextlib.suppress(NotImplementedError, OSError):
        os.rmdir(default_storage.path(folder))
