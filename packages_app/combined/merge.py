"""One subdir of a combined channel from its members' published index files.

Strict channel priority: a package name belongs to the first member (in the channel's
order) that has it in any of its subdirs, and every file of that name, in every subdir,
comes from that member alone. Members are read only through what they published (label
``main``), so a hosted, a mirror or a proxy member counts alike, and nothing here reads
the database.
"""

import hashlib
import io
from dataclasses import dataclass, field

import msgpack
import orjson
import zstandard
from django.core.files.storage import default_storage

from packages_app.index import repodata
from packages_app.index.store import save, save_index_files, save_shard

# Changing how entries are built changes every key, so nothing built before is reused.
FORMAT = 1
# What a build knows beyond the index files: {"winners": {name: member id}, "shards": [...]}.
FACTS = "combined.json"
EXTENSIONS = (".conda", ".tar.bz2")


@dataclass
class Source:
    """A member the caller may read, with what it published: {subdir: published_files}."""

    channel: object
    indexes: dict = field(default_factory=dict)

    @property
    def pk(self):
        return self.channel.pk


def key_of(subdir, sources):
    """What an entry depends on, digested: the subdir, the members in order and every
    repodata.json each of them publishes (its names in other subdirs decide winners)."""
    state = [
        [source.pk, sorted((s, f[repodata.REPODATA]["etag"]) for s, f in source.indexes.items())]
        for source in sources
    ]
    return hashlib.sha256(orjson.dumps([FORMAT, subdir, state])).hexdigest()


def package_name(filename):
    """The package name in a package file's name (``<name>-<version>-<build><ext>``)."""
    for extension in EXTENSIONS:
        if filename.endswith(extension):
            parts = filename[: -len(extension)].rsplit("-", 2)
            return parts[0] if len(parts) == 3 else None
    return None


def _read(entry):
    with default_storage.open(entry["path"], "rb") as handle:
        return handle.read()


def _unzstd(data):
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()


def _names_of_document(document):
    names = {record["name"] for key in (repodata.TAR_BZ2_KEY, repodata.CONDA_KEY)
             for record in document.get(key, {}).values()}  # fmt: skip
    names.update(filter(None, map(package_name, document.get("removed", ()))))
    return names


def _names_published(files):
    """The package names one published subdir holds: its shard index's, which is small,
    or else its repodata.json's."""
    if repodata.SHARD_INDEX in files:
        return set(msgpack.unpackb(_unzstd(_read(files[repodata.SHARD_INDEX])))["shards"])
    return _names_of_document(orjson.loads(_read(files[repodata.REPODATA])))


def merge(subdir, sources):
    """(RecordSet of the subdir, {package name: winning member id})."""
    documents, winners = [], {}
    for source in sources:
        files = source.indexes.get(subdir)
        document = orjson.loads(_read(files[repodata.REPODATA])) if files else {}
        documents.append(document)
        names = _names_of_document(document)
        for other, published in source.indexes.items():
            if other != subdir:
                names |= _names_published(published)
        for name in names:
            winners.setdefault(name, source.pk)
    rows = []
    for source, document in zip(sources, documents, strict=True):
        for key in (repodata.TAR_BZ2_KEY, repodata.CONDA_KEY):
            for filename, record in document.get(key, {}).items():
                if winners[record["name"]] == source.pk:
                    text = orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()
                    rows.append((filename, record["name"], text, False))
        for filename in document.get("removed", ()):
            name = package_name(filename)
            if name is not None and winners[name] == source.pk:
                rows.append((filename, name, "", True))
    records = repodata.RecordSet(subdir)
    records.replace_names((), rows)
    return records, winners


def write(channel_id, subdir, folder, sources):
    """Build the subdir's index files into ``folder`` (shards beside the channel's
    others); return their ``published_files`` entries."""
    records, winners = merge(subdir, sources)
    digests = _write_shards(channel_id, subdir, records)
    files = save_index_files(folder, subdir, records, digests)
    facts = {"winners": winners, "shards": sorted(digests.values())}
    save(folder, FACTS, orjson.dumps(facts))
    return files


def _write_shards(channel_id, subdir, records):
    """Write each name's shard unless stored already (they are named by their hash);
    return {name: hex digest}."""
    compressor = repodata.shard_compressor()
    return {
        name: save_shard(channel_id, subdir, records, name, compressor)[0] for name in records.names
    }


def read_facts(folder):
    """What :func:`write` noted in ``folder``: winners and shard digests."""
    return orjson.loads(_read({"path": f"{folder}/{FACTS}"}))


def bz2_of(files):
    """repodata.json.bz2's bytes from the entry's repodata.json."""
    return repodata.bz2_compress(_read(files[repodata.REPODATA]))
