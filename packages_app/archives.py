"""Reading and checking conda package archives (``.conda`` and ``.tar.bz2``).

:func:`inspect_package` reads a package file that is already on local disk and returns
its metadata, or raises :class:`InvalidPackage` with a message that names the problem.
"""

import json
import tarfile
import zipfile
from dataclasses import dataclass, field

import rattler
import zstandard
from conda_package_streaming import package_streaming

EXTENSIONS = (".conda", ".tar.bz2")
SUBDIRS = frozenset(str(subdir) for subdir in rattler.Subdir.all())
# Metadata members larger than this are refused rather than read into memory.
MAX_METADATA_BYTES = 16 * 1024 * 1024
METADATA_MEMBERS = ("info/index.json", "info/about.json", "info/run_exports.json")
ABOUT_FIELDS = ("summary", "description", "license", "home", "dev_url", "doc_url")
URL_FIELDS = ("home", "dev_url", "doc_url")


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
    if any(ord(c) < 32 or ord(c) == 127 for c in filename) or len(filename) > 255:
        raise InvalidPackage("The file name has control characters or is too long.")
    if package_extension(filename) is None:
        raise InvalidPackage(
            f"'{filename}' is not a conda package: the name must end in .conda or .tar.bz2."
        )


def inspect_package(path, filename):
    """Read and check the package at ``path`` that was uploaded as ``filename``."""
    check_filename(filename)
    extension = package_extension(filename)
    if extension == ".conda":
        _check_conda_container(path, filename[: -len(extension)])
    members = _read_metadata_members(path, filename)
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


def _check_conda_container(path, stem):
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            expected = {f"info-{stem}.tar.zst", f"pkg-{stem}.tar.zst"}
            missing = expected - names
            if missing:
                raise InvalidPackage(
                    f"The .conda archive lacks {', '.join(sorted(missing))}; "
                    "its inner names must match the file name."
                )
            # testzip reads every member and checks its CRC: a truncated or corrupted
            # upload is refused here rather than by the clients that download it.
            broken = archive.testzip()
            if broken is not None:
                raise InvalidPackage(f"The .conda archive is corrupt: member {broken} is damaged.")
    except zipfile.BadZipFile as exc:
        raise InvalidPackage(
            f"The .conda file is corrupt or truncated: not a readable zip archive ({exc})."
        ) from exc


def _read_metadata_members(path, filename):
    members = {}
    try:
        with open(path, "rb") as fileobj:
            # For .tar.bz2 this walks the whole archive, which also proves it is complete.
            for tar, member in package_streaming.stream_conda_info(filename, fileobj):
                if member.name in METADATA_MEMBERS and member.isfile():
                    if member.size > MAX_METADATA_BYTES:
                        raise InvalidPackage(f"{member.name} is larger than 16 MiB.")
                    members[member.name] = tar.extractfile(member).read()
    except InvalidPackage:
        raise
    except (tarfile.TarError, zstandard.ZstdError, OSError, EOFError, ValueError) as exc:
        raise InvalidPackage(f"'{filename}' is not a readable conda archive ({exc}).") from exc
    except Exception as exc:  # the archive libraries raise a variety of errors on bad input
        raise InvalidPackage(f"'{filename}' is not a readable conda archive ({exc}).") from exc
    return members


def _parse_json(raw, member):
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidPackage(f"{member} is not valid UTF-8 JSON ({exc}).") from exc
    if not isinstance(value, dict):
        raise InvalidPackage(f"{member} must hold a JSON object.")
    return value


def _check_index(index, filename, extension):
    for key in ("name", "version", "build"):
        if not isinstance(index.get(key), str) or not index[key]:
            raise InvalidPackage(f"info/index.json has no valid '{key}'.")
    if not isinstance(index.get("build_number", 0), int):
        raise InvalidPackage("info/index.json: 'build_number' must be an integer.")
    depends = index.get("depends", [])
    if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
        raise InvalidPackage("info/index.json: 'depends' must be a list of strings.")
    try:
        rattler.Version(index["version"])
    except Exception as exc:
        raise InvalidPackage(
            f"info/index.json: version '{index['version']}' is not a valid conda version."
        ) from exc
    expected = f"{index['name']}-{index['version']}-{index['build']}{extension}"
    if filename != expected:
        raise InvalidPackage(
            f"info/index.json says {index['name']} {index['version']} build {index['build']}, "
            f"so the file must be named '{expected}', not '{filename}'."
        )
    subdir = index.get("subdir")
    if subdir is None and index.get("noarch"):
        index["subdir"] = subdir = "noarch"
    if subdir not in SUBDIRS:
        raise InvalidPackage(f"info/index.json: subdir '{subdir}' is not a known platform.")


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
