"""Reading and checking conda package archives (``.conda`` and ``.tar.bz2``).

:func:`inspect_package` reads a package file that is already on local disk and returns
its metadata, or raises :class:`InvalidPackage` with a message that names the problem.
Every archive is streamed through once and never extracted: each member header is
checked (paths, links, sizes) as it goes by, and only ``info/`` metadata is kept.
"""

import bz2
import json
import posixpath
import re
import tarfile
import zipfile
from dataclasses import dataclass, field

import rattler
from django.conf import settings

try:
    from compression import zstd  # Python 3.14+
except ImportError:  # the backport conda-package-streaming reads .conda files with
    from backports import zstd

EXTENSIONS = (".conda", ".tar.bz2")
SUBDIRS = frozenset(str(subdir) for subdir in rattler.Subdir.all())
# Metadata members larger than this are refused rather than read into memory.
MAX_METADATA_BYTES = 16 * 1024 * 1024
METADATA_MEMBERS = ("info/index.json", "info/about.json", "info/run_exports.json")
ABOUT_FIELDS = ("summary", "description", "license", "home", "dev_url", "doc_url")
URL_FIELDS = ("home", "dev_url", "doc_url")
# tarfile reads long names and pax records into memory whole; real ones are a few KiB.
MAX_EXTENDED_HEADER_BYTES = 1024 * 1024
MAX_PATH_LENGTH = 4096
# Symlink names are remembered to refuse members placed through them; real packages have
# at most a few thousand.
MAX_SYMLINKS = 100_000
CHUNK = 1024 * 1024
EXTENDED_HEADER_TYPES = frozenset(
    {
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
    }
)
WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
MAX_FILENAME_BYTES = 255  # what file systems allow
# conda-build refuses these in versions and build strings; clients split file names at
# the last two dashes.
FORBIDDEN_CHARACTERS = frozenset("-=@#$%^&*:;\"'\\|<>?/ ")


class InvalidPackage(Exception):
    """The file is not a package Wharf can publish; the message says why."""


@dataclass
class PackageMetadata:
    index: dict
    about: dict = field(default_factory=dict)
    run_exports: dict | None = None

    @property
    def name(self):
        return self.index["name"]

    @property
    def subdir(self):
        return self.index["subdir"]


def package_extension(filename):
    for extension in EXTENSIONS:
        if filename.endswith(extension):
            return extension
    return None


def check_filename(filename):
    """Refuse names that could never be a package file, before reading any bytes."""
    if not filename:
        raise InvalidPackage("The upload carries no file name.")
    if "/" in filename or "\\" in filename or filename.startswith("."):
        raise InvalidPackage(f"'{filename}' is not a plain file name.")
    if any(ord(c) < 32 or ord(c) == 127 for c in filename):
        raise InvalidPackage(f"The file name {filename!r} has control characters.")
    try:
        encoded = filename.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidPackage(f"The file name {filename!r} is not valid UTF-8.") from exc
    if len(encoded) > MAX_FILENAME_BYTES:
        raise InvalidPackage(
            f"The file name is {len(encoded)} bytes long; at most {MAX_FILENAME_BYTES} are allowed."
        )
    if package_extension(filename) is None:
        raise InvalidPackage(
            f"'{filename}' is not a conda package: the name must end in .conda or .tar.bz2."
        )


def inspect_package(path, filename):
    """Read and check the package at ``path`` that was uploaded as ``filename``.

    Refuses, among the rest, members that a client would write outside the environment
    and archives that unpack to more than ``WHARF_MAX_UNPACKED_SIZE`` bytes (stopping as
    soon as they do).
    """
    check_filename(filename)
    extension = package_extension(filename)
    scan = _Scan(settings.WHARF_MAX_UNPACKED_SIZE)
    try:
        if extension == ".conda":
            _scan_conda(path, filename[: -len(extension)], scan)
        else:
            with bz2.open(path, "rb") as stream:
                scan.tar(stream, keep_metadata=True)
    except InvalidPackage:
        raise
    except zipfile.BadZipFile as exc:
        raise InvalidPackage(f"The .conda archive is corrupt ({exc}).") from exc
    except Exception as exc:  # the archive libraries raise a variety of errors on bad input
        raise InvalidPackage(f"'{filename}' is not a readable conda archive ({exc}).") from exc
    members = scan.metadata
    if "info/index.json" not in members:
        raise InvalidPackage(f"'{filename}' has no info/index.json.")
    index = _parse_json(members["info/index.json"], "info/index.json")
    _check_index(index, filename, extension)
    about = {}
    if "info/about.json" in members:
        about = _parse_json(members["info/about.json"], "info/about.json")
    run_exports = None
    if "info/run_exports.json" in members:
        run_exports = _parse_json(members["info/run_exports.json"], "info/run_exports.json")
    return PackageMetadata(index=index, about=about, run_exports=run_exports or None)


def _scan_conda(path, stem, scan):
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise InvalidPackage(
            f"The .conda file is corrupt or truncated: not a readable zip archive ({exc})."
        ) from exc
    with archive:
        components = _conda_components(archive, stem, scan.limit)
        # Reading a member to its end checks its CRC: a damaged upload is refused here
        # rather than by the clients that download it.
        for name in set(archive.namelist()) - set(components.values()):
            with archive.open(name) as member:
                while member.read(CHUNK):
                    pass
        # info first: a package with bad metadata is refused before its payload is read.
        for component in ("info", "pkg"):
            with archive.open(components[component]) as member, zstd.open(member) as stream:
                scan.tar(stream, keep_metadata=component == "info")


def _conda_components(archive, stem, limit):
    """The zip members holding the info and pkg tarballs, as clients look them up."""
    if sum(info.file_size for info in archive.infolist()) > limit:
        raise InvalidPackage(_too_large(limit))
    names = archive.namelist()
    components = {}
    for component in ("info", "pkg"):
        expected = f"{component}-{stem}.tar.zst"
        # Clients pick the one member whose name starts with "<component>-<stem>".
        found = [name for name in names if name.startswith(f"{component}-{stem}")]
        if expected not in found:
            raise InvalidPackage(
                f"The .conda archive lacks {expected}; its inner names must match the file name."
            )
        if len(found) > 1:
            raise InvalidPackage(
                f"The .conda archive has more than one {component}-{stem} member: "
                f"{', '.join(sorted(found))}."
            )
        components[component] = expected
    return components


def _too_large(limit):
    return (
        f"The package unpacks to more than {limit} bytes (WHARF_MAX_UNPACKED_SIZE): "
        "refused as a possible decompression bomb."
    )


class _CheckedTarInfo(tarfile.TarInfo):
    """Member headers that refuse what tarfile would otherwise read blindly."""

    @classmethod
    def fromtarfile(cls, archive):
        try:
            return super().fromtarfile(archive)
        except (tarfile.InvalidHeaderError, tarfile.TruncatedHeaderError) as exc:
            # tarfile takes a damaged header after the first for the end of the archive,
            # which would hide every member after it from this scan but not from clients.
            raise InvalidPackage(
                f"The package's tar archive is damaged or truncated at byte {archive.offset} "
                f"({exc})."
            ) from exc

    def _proc_member(self, archive):
        # Called by tarfile for every header, before it reads long names or pax records
        # into memory or follows a sparse map.
        if self.type in EXTENDED_HEADER_TYPES and self.size > MAX_EXTENDED_HEADER_BYTES:
            raise InvalidPackage(
                f"The package has a tar extended header of {self.size} bytes; at most "
                f"{MAX_EXTENDED_HEADER_BYTES} are allowed."
            )
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise InvalidPackage(f"'{self.name}' is a sparse file, which conda cannot install.")
        return super()._proc_member(archive)


class _Counted:
    """A decompressed stream that counts what comes out of it against the scan's limit."""

    def __init__(self, stream, scan):
        self.stream = stream
        self.scan = scan

    def read(self, size=CHUNK):
        data = self.stream.read(CHUNK if size is None or size < 0 else size)
        self.scan.count(len(data))
        return data


class _Scan:
    """One pass over the tar streams of a package: checks every member header, counts
    the unpacked bytes and keeps the ``info/`` metadata members."""

    def __init__(self, limit):
        self.limit = limit
        self.unpacked = 0
        self.metadata = {}
        self.symlinks = set()

    def count(self, size):
        self.unpacked += size
        if self.unpacked > self.limit:
            raise InvalidPackage(_too_large(self.limit))

    def tar(self, stream, *, keep_metadata):
        counted = _Counted(stream, self)
        with tarfile.open(fileobj=counted, mode="r|", tarinfo=_CheckedTarInfo) as archive:
            for member in archive:
                # A stream-mode TarFile keeps every header it read; nothing here looks back.
                archive.members = []
                wanted = keep_metadata and member.name in METADATA_MEMBERS and member.isfile()
                if wanted and member.size > MAX_METADATA_BYTES:
                    raise InvalidPackage(f"{member.name} is larger than 16 MiB.")
                self._check(member)
                if wanted:
                    self.metadata[member.name] = archive.extractfile(member).read()
        # Read on to the end of the compressed stream, so that a truncated or damaged end
        # (and zstd's or bzip2's checksum) is noticed too.
        while counted.read(CHUNK):
            pass

    def _check(self, member):
        name = member.name
        if len(name) > MAX_PATH_LENGTH or len(member.linkname) > MAX_PATH_LENGTH:
            raise InvalidPackage(f"'{name[:200]}…' has a path longer than {MAX_PATH_LENGTH}.")
        path = _inside(name)
        if member.issym():
            if _is_absolute(member.linkname):
                raise InvalidPackage(
                    f"'{name}' is a symlink to the absolute path '{member.linkname}'; "
                    "links in a package must be relative."
                )
            target = posixpath.join(posixpath.dirname(path), member.linkname)
            if _normalized(target) is None:
                raise InvalidPackage(
                    f"'{name}' is a symlink to '{member.linkname}', outside the package."
                )
        elif member.islnk():
            if _is_absolute(member.linkname) or _normalized(member.linkname) is None:
                raise InvalidPackage(
                    f"'{name}' is a hard link to '{member.linkname}', outside the package."
                )
            self._check_not_through_symlink(name, _normalized(member.linkname))
        elif not (member.isfile() or member.isdir()):
            raise InvalidPackage(
                f"'{name}' is a device or FIFO; a package holds only files, directories and links."
            )
        self._check_not_through_symlink(name, path)
        if member.issym():
            if len(self.symlinks) >= MAX_SYMLINKS:
                raise InvalidPackage(f"The package has more than {MAX_SYMLINKS} symlinks.")
            self.symlinks.add(path)
        # Refused as soon as the header says so, before a byte of the member is read.
        if self.unpacked + member.size > self.limit:
            raise InvalidPackage(_too_large(self.limit))

    def _check_not_through_symlink(self, name, path):
        parent = posixpath.dirname(path)
        while parent:
            if parent in self.symlinks:
                raise InvalidPackage(
                    f"'{name}' lies under the symlink '{parent}': a package may not place "
                    "files through a link."
                )
            parent = posixpath.dirname(parent)


def _is_absolute(path):
    path = path.replace("\\", "/")
    return path.startswith("/") or bool(WINDOWS_DRIVE.match(path))


def _normalized(path):
    """``path`` relative to the package root, or None when it leaves the root.

    Backslashes count as separators: Windows clients treat them so.
    """
    if _is_absolute(path):
        return None
    normal = posixpath.normpath(path.replace("\\", "/"))
    if normal == ".." or normal.startswith("../"):
        return None
    return normal


def _inside(name):
    """The member ``name`` relative to the package root; refused when it leaves the root."""
    if _is_absolute(name):
        raise InvalidPackage(
            f"The package contains the absolute path '{name}'; paths in a package must be relative."
        )
    normal = _normalized(name)
    if normal is None:
        raise InvalidPackage(
            f"The package contains '{name}', a path outside the package: clients would "
            "write it outside the environment."
        )
    return normal


def _parse_json(raw, member):
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidPackage(f"{member} is not valid UTF-8 JSON ({exc}).") from exc
    if not isinstance(value, dict):
        raise InvalidPackage(f"{member} must hold a JSON object.")
    return value


def _check_index(index, filename, extension):
    _check_index_types(index)
    for key in ("version", "build"):
        bad = [c for c in index[key] if c in FORBIDDEN_CHARACTERS or not c.isprintable()]
        if bad or not index[key].isascii():
            raise InvalidPackage(
                f"info/index.json: {key} '{index[key]}' contains {bad[0] if bad else 'non-ASCII'!r}"
                f", which conda does not allow in a {key}."
            )
    try:
        rattler.Version(index["version"])
    except Exception as exc:
        raise InvalidPackage(
            f"info/index.json: version '{index['version']}' is not a valid conda version ({exc})."
        ) from exc
    _check_specs(index)
    expected = f"{index['name']}-{index['version']}-{index['build']}{extension}"
    if filename != expected:
        raise InvalidPackage(
            f"info/index.json says {index['name']} {index['version']} build {index['build']}, "
            f"so the file must be named '{expected}', not '{filename}'."
        )
    if "subdir" not in index:
        index["subdir"] = "noarch"  # old noarch packages do not say
    subdir = index["subdir"]
    if subdir not in SUBDIRS:
        raise InvalidPackage(f"info/index.json: subdir '{subdir}' is not a known platform.")
    if index.get("noarch") and subdir != "noarch":
        raise InvalidPackage(
            f"info/index.json says noarch '{index['noarch']}' but subdir '{subdir}': a noarch "
            "package belongs in the noarch subdir."
        )
    try:
        # Whatever else the clients read from index.json, parsed as they parse it.
        rattler.IndexJson.from_str(json.dumps(index))
    except Exception as exc:
        raise InvalidPackage(f"info/index.json cannot be read by conda clients: {exc}.") from exc


def _check_index_types(index):
    for key in ("name", "version", "build", "build_number", "subdir"):
        if key not in index and not (key == "subdir" and index.get("noarch")):
            raise InvalidPackage(f"info/index.json has no '{key}'.")
    for key in ("name", "version", "build", "subdir"):
        if key in index and (not isinstance(index[key], str) or not index[key]):
            raise InvalidPackage(
                f"info/index.json: '{key}' must be a non-empty string, not {_shown(index[key])}."
            )
    for key in ("build_number", "timestamp"):
        value = index.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidPackage(
                f"info/index.json: '{key}' must be a whole number, not {_shown(value)}."
            )
    for key in ("depends", "constrains"):
        value = index.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise InvalidPackage(
                f"info/index.json: '{key}' must be a list of strings, not {_shown(value)}."
            )
    try:
        rattler.PackageName(index["name"])
    except Exception as exc:
        raise InvalidPackage(f"info/index.json: {exc}") from exc


def _check_specs(index):
    # Lenient parsing, as clients read repodata: strict parsing refuses forms such as
    # "libblas 3.9.0 16_linux64_openblas" that conda-forge packages carry.
    for key in ("depends", "constrains"):
        for spec in index.get(key, []):
            try:
                rattler.MatchSpec(spec)
            except Exception as exc:
                raise InvalidPackage(
                    f"info/index.json: {key} entry '{spec}' is not a valid match spec ({exc})."
                ) from exc


def _shown(value):
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def about_fields(about):
    """The about.json fields Wharf shows, as strings."""
    result = {}
    for key in ABOUT_FIELDS:
        value = about.get(key)
        if isinstance(value, list):
            value = value[0] if value else ""
        value = value if isinstance(value, str) else ""
        result[key] = value[:500] if key in URL_FIELDS else value
    return result
