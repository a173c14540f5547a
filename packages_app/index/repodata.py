"""Channel metadata documents: repodata.json, its compressed forms and CEP-16 shards.

Pure code from records to bytes; :mod:`packages_app.index` decides when to build and
where to publish. Records are kept serialized (``PackageFile.record_json``) so that
repodata.json is assembled by joining bytes, never by re-encoding every record.
"""

import bisect
import bz2
import hashlib
from datetime import UTC, datetime

import msgpack
import orjson
import zstandard
from django.conf import settings

REPODATA = "repodata.json"
REPODATA_ZST = "repodata.json.zst"
REPODATA_BZ2 = "repodata.json.bz2"
SHARD_INDEX = "repodata_shards.msgpack.zst"
# Each package name's newest version and what it needs (packages_app/index/current.py).
CURRENT_REPODATA = "current_repodata.json"
CURRENT_REPODATA_ZST = "current_repodata.json.zst"
INDEX_FILES = (
    REPODATA, REPODATA_ZST, REPODATA_BZ2, SHARD_INDEX, CURRENT_REPODATA, CURRENT_REPODATA_ZST
)  # fmt: skip
CONTENT_TYPES = {
    REPODATA: "application/json",
    REPODATA_ZST: "application/zstd",
    REPODATA_BZ2: "application/x-bzip2",
    SHARD_INDEX: "application/zstd",
    CURRENT_REPODATA: "application/json",
    CURRENT_REPODATA_ZST: "application/zstd",
}
CONDA_KEY = "packages.conda"
TAR_BZ2_KEY = "packages"


def record_key(filename):
    return CONDA_KEY if filename.endswith(".conda") else TAR_BZ2_KEY


def build_record(index, *, size, sha256, md5, run_exports=None, indexed_at=None):
    """The serialized repodata record of a package file, as rattler's indexer writes it."""
    record = dict(index)
    record.setdefault("depends", [])
    record["size"] = size
    record["sha256"] = sha256
    record["md5"] = md5
    if run_exports:
        record["run_exports"] = run_exports
    if indexed_at is not None:
        record["indexed_timestamp"] = int(indexed_at.timestamp() * 1000)
    return record_json(record)


def record_json(record):
    """A record dict serialized as published (keys sorted)."""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()


class RecordSet:
    """The records of one subdir, ready to be joined into repodata.json.

    Each file is kept as its JSON fragment ``"<filename>":<record>``; files are grouped by
    package name so that a change to one name replaces just that name's files. A yanked
    file is kept by name only: it is listed in ``removed``, not among the packages.
    """

    def __init__(self, subdir):
        self.subdir = subdir
        self.fragments = {}  # filename -> b'"filename":{record}'
        self.names = {}  # package name -> set of filenames, yanked ones included
        self.sorted = {TAR_BZ2_KEY: [], CONDA_KEY: []}
        self.removed = []  # sorted filenames of yanked files
        self.size = 0  # bytes held, to bound a cache of record sets
        # package name -> what it brings to current_repodata.json (current.Newest),
        # computed when asked and forgotten when the name changes.
        self.newest = {}

    def __len__(self):
        return len(self.fragments)

    def replace_names(self, names, rows):
        """Forget every file of ``names``, then add ``rows`` of
        (filename, name, record_json, yanked) where ``yanked`` is anything true or false."""
        for name in names:
            self.newest.pop(name, None)
            for filename in self.names.pop(name, ()):
                self._discard(filename)
        for filename, name, record_json, yanked in rows:
            self.newest.pop(name, None)
            self._discard(filename)
            self.names.setdefault(name, set()).add(filename)
            if yanked:
                bisect.insort(self.removed, filename)
                self.size += len(filename)
                continue
            fragment = orjson.dumps(filename) + b":" + record_json.encode()
            self.fragments[filename] = fragment
            self.size += len(fragment)
            bisect.insort(self.sorted[record_key(filename)], filename)

    def _discard(self, filename):
        fragment = self.fragments.pop(filename, None)
        if fragment is None:
            position = bisect.bisect_left(self.removed, filename)
            if position < len(self.removed) and self.removed[position] == filename:
                del self.removed[position]
                self.size -= len(filename)
            return
        self.size -= len(fragment)
        keys = self.sorted[record_key(filename)]
        del keys[bisect.bisect_left(keys, filename)]

    def records_of(self, name):
        """``{filename: record dict}`` of one package name's files that are not yanked."""
        return {
            filename: self.record(filename)
            for filename in self.names.get(name, ())
            if filename in self.fragments
        }

    def record(self, filename):
        """The record dict of a file that is not yanked."""
        return orjson.loads(self.fragments[filename][len(orjson.dumps(filename)) + 1 :])

    def removed_of(self, name):
        """The sorted filenames of one package name's yanked files."""
        return sorted(f for f in self.names.get(name, ()) if f not in self.fragments)

    def repodata_json(self):
        def members(key):
            return b",".join([self.fragments[filename] for filename in self.sorted[key]])

        return document(self.subdir, members(TAR_BZ2_KEY), members(CONDA_KEY), self.removed)


def document(subdir, tar_bz2_members, conda_members, removed):
    """A repodata document from the joined fragments of its two package maps."""
    return b"".join(
        [
            b'{"info":{"subdir":',
            orjson.dumps(subdir),
            b'},"packages":{',
            tar_bz2_members,
            b'},"packages.conda":{',
            conda_members,
            b'},"removed":',
            orjson.dumps(removed),
            b',"repodata_version":1}',
        ]
    )


def zstd_compress(data):
    compressor = zstandard.ZstdCompressor(level=settings.WHARF_ZSTD_LEVEL, threads=-1)
    return compressor.compress(data)


def bz2_compress(data):
    return bz2.compress(data, compresslevel=9)


def _shard_record(record):
    # CEP-16 stores digests as raw bytes.
    for key in ("md5", "sha256"):
        if isinstance(record.get(key), str):
            record[key] = bytes.fromhex(record[key])
    return record


# Shards are small and written once per change of their name: compress them well.
SHARD_ZSTD_LEVEL = 16


def shard_compressor(level=SHARD_ZSTD_LEVEL):
    """A compressor for :func:`shard`; one per thread, reused across shards."""
    return zstandard.ZstdCompressor(level=level)


def shard(records, compressor, removed=()):
    """The compressed CEP-16 shard of one package name from ``{filename: record}`` and
    the sorted filenames of its yanked files."""
    document = {TAR_BZ2_KEY: {}, CONDA_KEY: {}, "removed": list(removed)}
    for filename in sorted(records):
        document[record_key(filename)][filename] = _shard_record(records[filename])
    return compressor.compress(msgpack.packb(document, use_bin_type=True))


def shard_digest(data):
    return hashlib.sha256(data).hexdigest()


def shard_index(subdir, digests, created=True):
    """The compressed CEP-16 shard index from ``{package name: hex sha256}``; with
    ``created`` false, without the time it was made (the same bytes every time)."""
    info = {"subdir": subdir, "base_url": "", "shards_base_url": "./shards/"}
    if created:
        info["created_at"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    document = {
        "version": 1,
        "info": info,
        "shards": {name: bytes.fromhex(digests[name]) for name in sorted(digests)},
    }
    return shard_compressor().compress(msgpack.packb(document, use_bin_type=True))


def empty_index(subdir):
    """``{file name: bytes}`` of every index file of a subdir without packages.

    The same bytes every time and in every process (no timestamp, a compressor without
    threads), so their ETag is stable and clients revalidate them with a 304.
    """
    raw = RecordSet(subdir).repodata_json()
    compressed = shard_compressor().compress(raw)
    return {
        REPODATA: raw,
        REPODATA_ZST: compressed,
        REPODATA_BZ2: bz2_compress(raw),
        SHARD_INDEX: shard_index(subdir, {}, created=False),
        CURRENT_REPODATA: raw,
        CURRENT_REPODATA_ZST: compressed,
    }
