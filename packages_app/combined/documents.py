"""repodata.json of a combined subdir, and the files made from it, built when asked for.

Clients that read shards never need these; conda (and older clients) do. The members'
published repodata.json are read as streams, in one pass each and a group of records at a
time (:func:`published_records`), and only the records of the names each member wins
(:mod:`.merge`) are kept. repodata.json is written to a temporary file and stored from
there, its .zst compressed from that file; current_repodata.json is chosen from the
winners' records as a hosted channel's is.
"""

import bz2
import hashlib
import re
import tempfile

import orjson
import zstandard
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.utils import timezone

from packages_app import storage
from packages_app.index import current, repodata
from packages_app.index.store import save

from . import merge

# Bytes of records parsed at once: large enough that parsing runs in C, small enough
# that memory stays flat whatever the size of the member.
GROUP = 1 << 20
# Bytes of fragments written at once.
WRITE = 1 << 20
# Where one record of a package map may end and the next begin: "}" and the next file's
# name. The same text inside a record (or a string) is no end: the group up to it then
# does not parse, and the next place is tried.
_NEXT_FILE = {
    repodata.TAR_BZ2_KEY: re.compile(rb'\},"[^"\\]*\.tar\.bz2":\{'),
    repodata.CONDA_KEY: re.compile(rb'\},"[^"\\]*\.conda":\{'),
}
# What follows the package maps in a document Wharf wrote (repodata.document).
_AFTER = {repodata.TAR_BZ2_KEY: b',"packages.conda":{', repodata.CONDA_KEY: b',"removed":'}


class NotPublishedLayout(ValueError):
    """A repodata.json that is not laid out as Wharf writes it."""


class _Stream:
    """A stored file read in blocks, with what was read and not used yet in ``buffer``."""

    def __init__(self, path):
        self.blocks = storage.blocks(path)
        self.buffer = b""
        self.ended = False

    def fill(self, wanted):
        """Read until ``wanted`` bytes are buffered or the file ended."""
        parts = [self.buffer]
        have = len(self.buffer)
        while have < wanted and not self.ended:
            block = next(self.blocks, None)
            if block is None:
                self.ended = True
            else:
                parts.append(block)
                have += len(block)
        self.buffer = b"".join(parts)

    def take(self, count):
        taken, self.buffer = self.buffer[:count], self.buffer[count:]
        return taken


def published_records(path, subdir):
    """The records of a repodata.json Wharf published, read in one pass: ``(key,
    {filename: record})`` a group at a time for ``packages`` then ``packages.conda``, and
    last ``("removed", [filenames])``.

    Wharf writes each record once, as ``"<filename>":{...}``, in a fixed layout
    (:func:`packages_app.index.repodata.document`); a group of records is cut at a place
    where the next file's name follows, and is parsed by orjson, which refuses a group
    cut inside a record or a string. Raises :class:`NotPublishedLayout` for any other
    layout.
    """
    stream = _Stream(path)
    head = b'{"info":{"subdir":' + orjson.dumps(subdir) + b'},"packages":{'
    stream.fill(len(head))
    if stream.take(len(head)) != head:
        raise NotPublishedLayout(f"{path} does not start as Wharf writes repodata.json")
    for key in (repodata.TAR_BZ2_KEY, repodata.CONDA_KEY):
        yield from _package_map(stream, key, path)
    stream.fill(float("inf"))
    try:
        rest = orjson.loads(b'{"removed":' + stream.buffer)
    except orjson.JSONDecodeError as exc:
        raise NotPublishedLayout(f"{path} does not end as Wharf writes repodata.json") from exc
    yield "removed", rest.get("removed") or []


def _package_map(stream, key, path):
    """The groups of one package map; leaves the stream after the map and what follows
    it (``_AFTER``)."""
    end = b"}}" + _AFTER[key]
    while True:
        stream.fill(GROUP + len(end))
        if stream.buffer[:1] == b"}":
            break
        group, used = _group(stream, key, end, path)
        yield key, group
        stream.take(used)
    stream.fill(1 + len(_AFTER[key]))
    if stream.take(1 + len(_AFTER[key])) != b"}" + _AFTER[key]:
        raise NotPublishedLayout(f"{path}: {key} is not followed as Wharf writes it")


def _group(stream, key, end, path):
    """The records at the start of the stream's buffer, ``(records, bytes used)``:
    about ``GROUP`` bytes of them, cut before a next file or at the map's end."""
    after = 0  # places before this one were tried
    while True:
        buffer = stream.buffer
        found = _NEXT_FILE[key].search(buffer, max(after, GROUP))
        last = buffer.find(end, after)
        cuts = [at for at in (found.start() if found else -1, last) if at >= 0]
        if not cuts:
            if stream.ended:
                raise NotPublishedLayout(f"{path}: {key} does not end")
            stream.fill(len(buffer) + GROUP)
            continue
        cut = min(cuts)
        try:
            records = orjson.loads(b"{" + buffer[: cut + 1] + b"}")
        except orjson.JSONDecodeError:
            after = cut + 1  # inside a record or a string: try the next place
            continue
        # Before a next file the "}," is used; at the map's end the "}" that closes it
        # is left for _package_map.
        return records, cut + 1 + (cut != last)


def winners_records(subdir, sources, winners):
    """A :class:`~packages_app.index.repodata.RecordSet` of the subdir's records of each
    name from the member that wins it (``winners``: {name: member id})."""
    records = repodata.RecordSet(subdir)
    removed = []
    for source in sources:
        files = source.indexes.get(subdir)
        if not files:
            continue
        for key, group in published_records(files[repodata.REPODATA]["path"], subdir):
            if key == "removed":
                removed += [f for f in group if winners.get(merge.package_name(f)) == source.pk]
                continue
            records.replace_names((), _rows_won(group, winners, source.pk))
    for filename in removed:
        records.replace_names((), [(filename, merge.package_name(filename), "", True)])
    return records


def _rows_won(group, winners, member):
    """``RecordSet`` rows of the records of ``group`` whose name ``member`` wins (a
    record that is not an object with a name is no package record)."""
    for filename, record in group.items():
        name = record.get("name") if isinstance(record, dict) else None
        if isinstance(name, str) and winners.get(name) == member:
            yield filename, name, repodata.record_json(record), False


def write(folder, subdir, sources, winners):
    """Build repodata.json, .zst and current_repodata.json (+ .zst) of the subdir into
    ``folder``; return their ``published_files`` entries."""
    records = winners_records(subdir, sources, winners)
    files = {}
    with tempfile.TemporaryFile(dir=settings.FILE_UPLOAD_TEMP_DIR) as raw:
        digest, size = _write_document(records, raw)
        files[repodata.REPODATA] = _save_file(folder, repodata.REPODATA, raw, digest, size)
        with tempfile.TemporaryFile(dir=settings.FILE_UPLOAD_TEMP_DIR) as compressed:
            raw.seek(0)
            compressor = zstandard.ZstdCompressor(level=settings.WHARF_ZSTD_LEVEL, threads=-1)
            compressor.copy_stream(raw, compressed, size=size)
            files[repodata.REPODATA_ZST] = _save_file(
                folder, repodata.REPODATA_ZST, compressed, *_digest_of(compressed)
            )
    newest = current.current_repodata_json(records)
    del records
    files[repodata.CURRENT_REPODATA] = save(folder, repodata.CURRENT_REPODATA, newest)
    files[repodata.CURRENT_REPODATA_ZST] = save(
        folder, repodata.CURRENT_REPODATA_ZST, repodata.zstd_compress(newest)
    )
    return files


def _write_document(records, out):
    """Write repodata.json of ``records`` to the file ``out``, as
    :meth:`RecordSet.repodata_json` makes it, without holding it whole; return its
    (sha256 hex digest, size)."""
    digest = hashlib.sha256()
    size = 0

    def emit(data):
        nonlocal size
        digest.update(data)
        out.write(data)
        size += len(data)

    emit(b'{"info":{"subdir":' + orjson.dumps(records.subdir) + b'},"packages":{')
    for key, after in (
        (repodata.TAR_BZ2_KEY, b'},"packages.conda":{'),
        (repodata.CONDA_KEY, b'},"removed":'),
    ):
        batch, held, separator = [], 0, b""
        for filename in records.sorted[key]:
            fragment = records.fragments[filename]
            batch.append(fragment)
            held += len(fragment)
            if held >= WRITE:
                emit(separator + b",".join(batch))
                batch, held, separator = [], 0, b","
        if batch:
            emit(separator + b",".join(batch))
        emit(after)
    emit(orjson.dumps(records.removed) + b',"repodata_version":1}')
    return digest.hexdigest(), size


def _digest_of(handle):
    """(sha256 hex digest, size) of a temporary file, read from its start."""
    handle.seek(0)
    digest = hashlib.sha256()
    size = 0
    while block := handle.read(storage.BLOCK):
        digest.update(block)
        size += len(block)
    return digest.hexdigest(), size


def _save_file(folder, name, handle, digest, size):
    """Store a temporary file as one index file; its ``published_files`` entry (as
    :func:`packages_app.index.store.save` gives for bytes)."""
    handle.seek(0)
    path = default_storage.save(f"{folder}/{name}", File(handle, name=name))
    return {"path": path, "etag": digest[:32], "size": size, "at": timezone.now().isoformat()}


def bz2_of(folder, files):
    """Store repodata.json.bz2, compressed from the stored repodata.json as it is read;
    its ``published_files`` entry."""
    compressor = bz2.BZ2Compressor(9)
    with tempfile.TemporaryFile(dir=settings.FILE_UPLOAD_TEMP_DIR) as out:
        for block in storage.blocks(files[repodata.REPODATA]["path"]):
            out.write(compressor.compress(block))
        out.write(compressor.flush())
        return _save_file(folder, repodata.REPODATA_BZ2, out, *_digest_of(out))
