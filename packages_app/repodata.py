"""Channel metadata documents: repodata.json, its compressed forms and CEP-16 shards.

Pure functions from records to bytes; :mod:`packages_app.indexing` decides when to build
and where to publish them.
"""

import bz2
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgpack
import orjson
import zstandard
from django.conf import settings

REPODATA = "repodata.json"
REPODATA_ZST = "repodata.json.zst"
REPODATA_BZ2 = "repodata.json.bz2"
SHARD_INDEX = "repodata_shards.msgpack.zst"
INDEX_FILES = (REPODATA, REPODATA_ZST, REPODATA_BZ2, SHARD_INDEX)
CONTENT_TYPES = {
    REPODATA: "application/json",
    REPODATA_ZST: "application/zstd",
    REPODATA_BZ2: "application/x-bzip2",
    SHARD_INDEX: "application/zstd",
}


@dataclass
class IndexFiles:
    files: dict = field(default_factory=dict)  # index file name -> bytes
    shards: dict = field(default_factory=dict)  # hex digest -> compressed shard bytes


def record_key(filename):
    return "packages.conda" if filename.endswith(".conda") else "packages"


def build_record(index, *, size, sha256, md5, run_exports=None, indexed_at=None):
    """The repodata record of a package file, as rattler's indexer writes it."""
    record = dict(index)
    record.setdefault("depends", [])
    record["size"] = size
    record["sha256"] = sha256
    record["md5"] = md5
    if run_exports:
        record["run_exports"] = run_exports
    if indexed_at is not None:
        record["indexed_timestamp"] = int(indexed_at.timestamp() * 1000)
    return {key: record[key] for key in sorted(record)}


def repodata_document(subdir, files):
    """``files`` yields ``(filename, record)`` pairs."""
    packages, packages_conda = {}, {}
    for filename, record in sorted(files, key=lambda item: item[0]):
        (packages_conda if filename.endswith(".conda") else packages)[filename] = record
    return {
        "info": {"subdir": subdir},
        "packages": packages,
        "packages.conda": packages_conda,
        "removed": [],
        "repodata_version": 1,
    }


def zstd_compress(data):
    return zstandard.ZstdCompressor(level=settings.WHARF_ZSTD_LEVEL).compress(data)


def _shard_record(record):
    # CEP-16 stores digests as raw bytes.
    shard_record = dict(record)
    for key in ("md5", "sha256"):
        if isinstance(shard_record.get(key), str):
            shard_record[key] = bytes.fromhex(shard_record[key])
    return shard_record


def build_shards(document):
    """Return ``{package name: compressed shard bytes}`` for a repodata document."""
    by_name = {}
    for key in ("packages", "packages.conda"):
        for filename, record in document[key].items():
            shard = by_name.setdefault(
                record["name"], {"packages": {}, "packages.conda": {}, "removed": []}
            )
            shard[key][filename] = _shard_record(record)
    compressor = zstandard.ZstdCompressor(level=settings.WHARF_ZSTD_LEVEL)
    return {
        name: compressor.compress(msgpack.packb(shard, use_bin_type=True))
        for name, shard in by_name.items()
    }


def build_index_files(subdir, files):
    document = repodata_document(subdir, files)
    raw = orjson.dumps(document)
    shards_by_name = build_shards(document)
    digests = {name: hashlib.sha256(data).digest() for name, data in shards_by_name.items()}
    shard_index = {
        "version": 1,
        "info": {
            "subdir": subdir,
            "base_url": "",
            "shards_base_url": "./shards/",
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        },
        "shards": dict(sorted(digests.items())),
    }
    return IndexFiles(
        files={
            REPODATA: raw,
            REPODATA_ZST: zstd_compress(raw),
            REPODATA_BZ2: bz2.compress(raw, compresslevel=9),
            SHARD_INDEX: zstd_compress(msgpack.packb(shard_index, use_bin_type=True)),
        },
        shards={digests[name].hex(): data for name, data in shards_by_name.items()},
    )
