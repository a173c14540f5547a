"""Writing a channel as a static directory that any web server can serve.

The copy holds, per subdir, the package files and the index files Wharf publishes —
repodata.json, .json.zst, .json.bz2, repodata_shards.msgpack.zst and shards/ — byte for
byte, read through the storage API (local or S3) from the published index, plus
channeldata.json. The package files written are exactly those the exported
repodata.json lists, yanked ones (in its ``removed`` list) included, and each is checked
against its sha256 while it is copied.

Labels other than ``main`` are written where Wharf serves them, ``label/<label>/`` with
the same layout, so the copy serves each label's URL too. A file carried by several
labels is copied once and hard-linked into the other folders (copied where the file
system has no hard links).

Every file is written under a temporary name and renamed, so an interrupted export never
leaves a truncated file under its final name; index files are written last, so a web
server serving the directory during a second export never lists a package that is not
there yet. Files already present with the right content are not copied again.
"""

import contextlib
import hashlib
import io
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import orjson
import zstandard

from accounts.errors import DomainError
from packages_app import storage
from packages_app.discovery import catalog
from packages_app.index import rebuilds, repodata
from packages_app.index import store as index_store
from packages_app.models import MAIN_LABEL, PackageFile, SubdirIndex

CHUNK = 1024 * 1024
PARTIAL_PREFIX = ".wharf-export-"
CHANNELDATA = "channeldata.json"


class ExportError(DomainError):
    """The channel cannot be exported as it is; the message says why."""

    status = 409


@dataclass
class ExportResult:
    written: int = 0
    linked: int = 0  # written as a hard link to a copy made by this export
    unchanged: int = 0
    written_bytes: int = 0
    stale: list = field(default_factory=list)  # files in the directory no longer in the channel
    problems: dict = field(default_factory=dict)  # file -> what is wrong with it


@dataclass
class SubdirSnapshot:
    """What one subdir publishes at one moment: index file bytes, package files, shards."""

    subdir: str
    files: dict  # index file name -> bytes
    packages: dict = field(default_factory=dict)  # filename -> (sha256, size)
    shards: list = field(default_factory=list)  # hex digests
    removed: list = field(default_factory=list)  # yanked files: in "removed", still served
    label: str = MAIN_LABEL

    @property
    def folder(self):
        return label_root(self.label) / self.subdir


def label_root(label):
    """Where a label's channel sits in an export, as in Wharf's URLs: at the top for
    ``main``, in label/<label>/ for another label."""
    return Path() if label == MAIN_LABEL else Path("label", label)


def export_channel(channel, directory, *, prune=False, wait=60, progress=None):
    """Write ``channel`` to ``directory``; return an :class:`ExportResult`.

    Subdirs whose index is behind their files are rebuilt (or waited for, up to ``wait``
    seconds) first. With ``prune``, package files and shards in the directory that the
    channel no longer has are deleted (else they are listed in ``stale``).
    ``progress(done, total)`` counts package files and shards.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    result = ExportResult()
    snapshots = [snapshot(index) for index in _current_indexes(channel, wait, result)]
    if not any(s.subdir == "noarch" and s.label == MAIN_LABEL for s in snapshots):
        snapshots.append(_empty_snapshot("noarch"))
    total = sum(len(s.packages) + len(s.shards) for s in snapshots)
    done = 0
    copies = {}  # sha256 -> a complete copy in the directory, to link the same bytes to
    for snap in snapshots:
        folder = directory / snap.folder
        _clear_partial(folder, folder / "shards")
        paths = _storage_paths(channel, snap, result)
        paths.update(_yanked(channel, snap))
        for filename, (sha256, size) in snap.packages.items():
            if filename in paths:
                _copy(paths[filename], folder / filename, sha256, size, result, copies)
            done += 1
            if progress:
                progress(done, total)
        for digest in snap.shards:
            path = index_store.shard_path(channel.pk, snap.subdir, digest, snap.label)
            target = folder / "shards" / f"{digest}.msgpack.zst"
            _copy(path, target, digest, None, result, copies)
            done += 1
            if progress:
                progress(done, total)
    for snap in snapshots:
        # repodata.json last: a reader of the directory sees the new index only when
        # everything it names is in place.
        folder = directory / snap.folder
        for name in (repodata.SHARD_INDEX, repodata.REPODATA_ZST, repodata.REPODATA_BZ2,
                     repodata.CURRENT_REPODATA, repodata.CURRENT_REPODATA_ZST):  # fmt: skip
            if name in snap.files:  # an index published before current_repodata has none
                _write(folder / name, snap.files[name], result)
        _write(folder / repodata.REPODATA, snap.files[repodata.REPODATA], result)
        _stale(folder, snap, prune, result)
    for label in sorted({s.label for s in snapshots}):
        data = orjson.dumps(catalog.channeldata(channel, label))
        _write(directory / label_root(label) / CHANNELDATA, data, result)
    return result


def _current_indexes(channel, wait, result):
    """The channel's published subdir indexes, each brought up to its latest change.

    A subdir that is behind is rebuilt here; if a worker holds its lease, it is waited for.
    One still behind after that is exported as last published, and reported.
    """
    deadline = time.monotonic() + wait
    indexes = []
    # main first: its folders get the copies that other labels' folders link to.
    found = SubdirIndex.objects.filter(channel=channel)
    for index in sorted(found, key=lambda i: (i.label != MAIN_LABEL, i.label, i.subdir)):
        if not index.is_current:
            rebuilds.rebuild_now(channel.pk, index.subdir, index.label)
            index.refresh_from_db()
        while not index.is_current and time.monotonic() < deadline:
            time.sleep(0.2)
            index.refresh_from_db()
        if not index.is_current:
            result.problems[f"{label_root(index.label) / index.subdir}/"] = (
                f"its index was still being rebuilt after {wait} s; the files it published "
                "before were exported. Run the export again."
            )
        if repodata.REPODATA in index.published_files:
            indexes.append(index)
    return indexes


def snapshot(index, attempts=3):
    """Read what ``index`` publishes now, through the storage API.

    A folder replaced while it is read may be deleted under the reader; then the row is
    read again.
    """
    for attempt in range(attempts):
        published = dict(index.published_files)
        try:
            files = {name: _read_published(entry) for name, entry in published.items()}
        except FileNotFoundError:
            if attempt == attempts - 1:
                raise
            index.refresh_from_db()
            continue
        bz2_entry = published.get(repodata.REPODATA_BZ2)
        if bz2_entry is None or bz2_entry.get("source") != published[repodata.REPODATA]["etag"]:
            # The .bz2 follows the rest a little later; compressed here the same way.
            files[repodata.REPODATA_BZ2] = repodata.bz2_compress(files[repodata.REPODATA])
        return _described(index.subdir, files, index.label)


def _read_published(entry):
    data = b"".join(storage.blocks(entry["path"]))
    if hashlib.sha256(data).hexdigest()[:32] != entry["etag"]:
        raise ExportError(f"{entry['path']} in storage does not match its published hash.")
    return data


def _empty_snapshot(subdir):
    return _described(subdir, repodata.empty_index(subdir))


def _described(subdir, files, label=MAIN_LABEL):
    document = orjson.loads(files[repodata.REPODATA])
    packages = {}
    for key in (repodata.TAR_BZ2_KEY, repodata.CONDA_KEY):
        for filename, record in document.get(key, {}).items():
            packages[filename] = (record["sha256"], record["size"])
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(files[repodata.SHARD_INDEX]))
    shards = msgpack.unpackb(reader.read())["shards"]
    shards = sorted(d.hex() for d in shards.values())
    return SubdirSnapshot(subdir, files, packages, shards, document.get("removed", []), label)


def _storage_paths(channel, snap, result):
    """{filename: storage path} of the snapshot's package files with the bytes it lists."""
    rows = PackageFile.objects.filter(
        channel=channel, subdir=snap.subdir, filename__in=list(snap.packages)
    ).values_list("filename", "sha256", "storage_path")
    paths = {}
    for filename, sha256, storage_path in rows:
        if sha256 == snap.packages[filename][0]:
            paths[filename] = storage_path
    for filename in snap.packages.keys() - paths.keys():
        result.problems[f"{snap.folder}/{filename}"] = (
            "deleted or replaced after its index was published; run the export again."
        )
    return paths


def _yanked(channel, snap):
    """{filename: storage path} of the snapshot's yanked files, added to its packages.

    repodata.json names them in ``removed`` only; they are exported all the same, since
    environments locked before the yank download them by URL.
    """
    rows = PackageFile.objects.filter(
        channel=channel, subdir=snap.subdir, filename__in=snap.removed, yanked_at__isnull=False
    ).values_list("filename", "sha256", "size", "storage_path")
    paths = {}
    for filename, sha256, size, storage_path in rows:
        snap.packages[filename] = (sha256, size)
        paths[filename] = storage_path
    return paths


def _sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class _Damaged(Exception):
    pass


def _copy(storage_path, target, sha256, size, result, copies):
    """Copy a stored file to ``target`` unless it is there already; check its sha256.

    ``copies`` ({sha256: path}) holds the files of this export known to be whole: the
    same bytes are linked to one of them instead of being read from storage again.
    """
    present = target.is_file() and (size is None or target.stat().st_size == size)
    if present:
        known = copies.get(sha256)
        if (known and os.path.samefile(known, target)) or _sha256_of(target) == sha256:
            result.unchanged += 1
            copies.setdefault(sha256, target)
            return
    if sha256 in copies and _link(copies[sha256], target):
        result.linked += 1
        return
    try:
        source = storage.blocks(storage_path)  # from a bucket too, never read whole
    except FileNotFoundError:
        result.problems[str(target)] = f"{storage_path} is missing from storage."
        return
    digest = hashlib.sha256()
    try:
        with contextlib.closing(source), _atomic(target) as out:
            for chunk in source:
                digest.update(chunk)
                out.write(chunk)
            if digest.hexdigest() != sha256:
                raise _Damaged
    except _Damaged:
        result.problems[str(target)] = (
            f"the stored bytes ({storage_path}) hash to {digest.hexdigest()}, not {sha256}; "
            "storage is damaged and the file was not written."
        )
        return
    result.written += 1
    result.written_bytes += target.stat().st_size
    copies[sha256] = target


def _link(source, target):
    """Make ``target`` a hard link to ``source``; False where links cannot be made."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f"{PARTIAL_PREFIX}{os.urandom(6).hex()}"
    try:
        os.link(source, partial)
    except OSError:
        return False
    os.replace(partial, target)
    return True


def _write(target, data, result):
    """Write ``data`` to ``target`` unless it holds exactly that already."""
    if target.is_file() and target.stat().st_size == len(data) and target.read_bytes() == data:
        result.unchanged += 1
        return
    with _atomic(target) as out:
        out.write(data)
    result.written += 1
    result.written_bytes += len(data)


@contextlib.contextmanager
def _atomic(target):
    """A file that appears under ``target`` only once it is completely written and
    synced; an exception inside the block leaves nothing behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=PARTIAL_PREFIX)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.chmod(partial, 0o644)  # mkstemp's 0600 would keep a web server out
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise


def _clear_partial(*folders):
    """Delete what an interrupted export was writing."""
    for folder in folders:
        if folder.is_dir():
            for path in folder.glob(f"{PARTIAL_PREFIX}*"):
                path.unlink(missing_ok=True)


def _stale(folder, snap, prune, result):
    """Package files and shards in ``folder`` that the snapshot does not have."""
    shards = {f"{digest}.msgpack.zst" for digest in snap.shards}
    candidates = [
        path for path in folder.iterdir() if path.is_file() and path.name not in snap.packages
    ]
    candidates = [path for path in candidates if path.name.endswith((".conda", ".tar.bz2"))]
    if (folder / "shards").is_dir():
        candidates += [p for p in (folder / "shards").iterdir() if p.name not in shards]
    for path in sorted(candidates):
        if prune:
            path.unlink()
        else:
            result.stale.append(str(path))
