"""Who wins each package name of a combined channel, and its shard index.

Strict channel priority: a package name belongs to the first member (in the channel's
order) that has it in any of its subdirs, and every file of that name, in every subdir,
comes from that member alone. Members are read only through what they published (label
``main``), so a hosted, a mirror or a proxy member counts alike, and nothing here reads
the database.

A member's shard of a name holds exactly that name's records in the subdir (and, for a
hosted member, its yanked files as ``removed``), which is what the combined channel
serves for a name the member wins. So the combined shard index is assembled from the
members' shard indexes — small files, a name and a digest per name — and no shard is
written: a request for one is answered from the member that stores it
(:mod:`.serving`). repodata.json and the files made from it are built apart, when a client
asks for them (:mod:`.documents`).
"""

import hashlib
import io
from dataclasses import dataclass, field

import msgpack
import orjson
import zstandard
from django.core.files.storage import default_storage

from packages_app.index import repodata
from packages_app.index.store import save

# Changing how entries are built changes every key, so nothing built before is reused.
FORMAT = 2
# What a build knows beyond the index files (:func:`write_shard_index`).
FACTS = "combined.json"
EXTENSIONS = (".conda", ".tar.bz2")
# Hex digits of a key that name the members it was built for (the rest digest their state).
MEMBERS_DIGITS = 16


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
    repodata.json each of them publishes (its names in other subdirs decide winners).

    Its first ``MEMBERS_DIGITS`` digits depend on the subdir and the members only, so
    the entries of one set of members (one kind of caller) share them
    (:func:`members_prefix`)."""
    state = [
        [source.pk, sorted((s, f[repodata.REPODATA]["etag"]) for s, f in source.indexes.items())]
        for source in sources
    ]
    digest = hashlib.sha256(orjson.dumps([FORMAT, subdir, state])).hexdigest()
    return members_prefix(subdir, sources) + digest[: 64 - MEMBERS_DIGITS]


def members_prefix(subdir, sources):
    """The start of the keys of every entry of ``subdir`` for these members, in order."""
    members = [source.pk for source in sources]
    return hashlib.sha256(orjson.dumps([FORMAT, subdir, members])).hexdigest()[:MEMBERS_DIGITS]


def package_name(filename):
    """The package name in a package file's name (``<name>-<version>-<build><ext>``)."""
    for extension in EXTENSIONS:
        if filename.endswith(extension):
            parts = filename[: -len(extension)].rsplit("-", 2)
            return parts[0] if len(parts) == 3 else None
    return None


def read(entry):
    """The bytes of a stored index file (one of a ``published_files``)."""
    with default_storage.open(entry["path"], "rb") as handle:
        return handle.read()


def _unzstd(data):
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()


def shards_published(files):
    """{package name: shard digest (bytes)} of one published subdir, from its shard index.

    A subdir published without one (before shards existed) gives its names, from
    repodata.json, with no digest: they count for winners, and have no shards to serve.
    """
    if repodata.SHARD_INDEX in files:
        return msgpack.unpackb(_unzstd(read(files[repodata.SHARD_INDEX])))["shards"]
    document = orjson.loads(read(files[repodata.REPODATA]))
    names = {record["name"] for key in (repodata.TAR_BZ2_KEY, repodata.CONDA_KEY)
             for record in document.get(key, {}).values()}  # fmt: skip
    names.update(filter(None, map(package_name, document.get("removed", ()))))
    return dict.fromkeys(names)


def winning_shards(subdir, sources):
    """{package name: (winning member id, hex shard digest)} of the names ``subdir`` of
    the combined channel holds: those whose winner has them in this subdir."""
    winners, here = {}, []
    for source in sources:
        for other, published in source.indexes.items():
            shards = shards_published(published)
            if other == subdir:
                here.append((source.pk, shards))
            for name in shards:
                winners.setdefault(name, source.pk)
    return {
        name: (member, digest.hex())
        for member, shards in here
        for name, digest in shards.items()
        if winners[name] == member and digest is not None
    }


def write_shard_index(subdir, folder, sources):
    """Store the subdir's shard index and what serving needs to know in ``folder``;
    return the shard index's ``published_files`` entries."""
    won = winning_shards(subdir, sources)
    digests = {name: digest for name, (_, digest) in won.items()}
    index = repodata.shard_index(subdir, digests)
    files = {repodata.SHARD_INDEX: save(folder, repodata.SHARD_INDEX, index)}
    facts = {
        "winners": {name: member for name, (member, _) in won.items()},
        "shards": {digest: member for member, digest in won.values()},
    }
    save(folder, FACTS, orjson.dumps(facts))
    return files


def read_facts(folder):
    """What :func:`write_shard_index` noted in ``folder``: {"winners": {package name:
    member id}, "shards": {hex digest: member id}} of the names of the subdir."""
    return orjson.loads(read({"path": f"{folder}/{FACTS}"}))
