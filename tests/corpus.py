"""Malformed conda packages for tests/intake/test_bad_input.py, derived from real ones.

:class:`Corpus` takes a real ``.conda`` and ``.tar.bz2`` built by rattler-build apart once
and rebuilds them with one thing wrong: the outer zip, the zstd or bzip2 streams, the tar
members or ``info/index.json``. :data:`ARCHIVE_CASES` lists every case with the status and
the words of the answer expected for it. Nothing here is a stored binary.
"""

import bz2
import gzip
import io
import json
import tarfile
import zipfile
from dataclasses import dataclass

import zstandard

from .packages import PackageFactory

NAME, VERSION, BUILD = "victim", "1.0", "0"
STEM = f"{NAME}-{VERSION}-{BUILD}"
INFO = f"info-{STEM}.tar.zst"
PKG = f"pkg-{STEM}.tar.zst"
MIB = 1024 * 1024
# The tests run with this WHARF_MAX_UNPACKED_SIZE; the real packages unpack to ~30 KiB.
UNPACKED_LIMIT = 2 * MIB


class Zeros(io.RawIOBase):
    """``size`` zero bytes, produced as they are read (bombs are never held in memory)."""

    def __init__(self, size):
        self.left = size

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def member(name, data=b"x\n", **fields):
    """A tar entry: ``(TarInfo, content)``; ``content`` is bytes, or a reader of ``size``."""
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    info.size = fields.pop("size", len(data) if isinstance(data, bytes) else 0)
    for key, value in fields.items():
        setattr(info, key, value)
    return info, data


def symlink(name, target):
    return member(name, b"", type=tarfile.SYMTYPE, linkname=target, size=0)


def hardlink(name, target):
    return member(name, b"", type=tarfile.LNKTYPE, linkname=target, size=0)


def tar_bytes(entries, compressor=None, tar_format=tarfile.PAX_FORMAT):
    """The entries as a tar stream, compressed on the fly by ``compressor(out)`` if given."""
    out = io.BytesIO()
    target = compressor(out) if compressor else out
    with tarfile.open(fileobj=target, mode="w|", format=tar_format) as tar:
        for info, data in entries:
            content = io.BytesIO(data) if isinstance(data, bytes) else data
            tar.addfile(info, content if info.isreg() else None)
    if compressor:
        target.close()
    return out.getvalue()


def zstd_writer(out):
    return zstandard.ZstdCompressor(level=3).stream_writer(out, closefd=False)


def bz2_writer(out):
    return bz2.BZ2File(out, "wb")


def zstd(raw):
    return zstandard.ZstdCompressor(level=3).compress(raw)


def zip_bytes(members, compression=zipfile.ZIP_STORED):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def read_tar(raw):
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return [(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar.getmembers()]


def replaced(entries, name, data):
    """``entries`` with member ``name`` holding ``data`` (or left out, for None)."""
    result = [(info, content) for info, content in entries if info.name != name]
    if data is not None:
        result.append(member(name, data))
    return result


def flip(data, at):
    """``data`` with the byte at ``at`` inverted."""
    changed = bytearray(data)
    changed[at] ^= 0xFF
    return bytes(changed)


class Corpus:
    """A real package in both formats, taken apart, to build broken variants from."""

    def __init__(self, folder):
        factory = PackageFactory(folder)
        self.conda_path = factory.make(NAME, VERSION, depends=["python >=3.8"])
        self.tar_bz2_path = factory.make(
            NAME, VERSION, depends=["python >=3.8"], extension=".tar.bz2"
        )
        with zipfile.ZipFile(self.conda_path) as archive:
            self.zip_members = {name: archive.read(name) for name in archive.namelist()}
        decompress = zstandard.ZstdDecompressor().decompressobj
        self.info_tar = decompress().decompress(self.zip_members[INFO])
        self.pkg_tar = decompress().decompress(self.zip_members[PKG])
        self.info = read_tar(self.info_tar)
        self.pkg = read_tar(self.pkg_tar)
        self.bz2_entries = read_tar(bz2.decompress(self.tar_bz2_path.read_bytes()))
        index = next(data for info, data in self.info if info.name == "info/index.json")
        self.index = json.loads(index)
        self._built = {}

    def build(self, case):
        """``(filename, bytes)`` of a case, built once per test session."""
        if case.id not in self._built:
            self._built[case.id] = case.build(self)
        return self._built[case.id]

    # .conda -----------------------------------------------------------------------------

    def conda(self, *, info=None, pkg=None, members=None, filename=None, stem=None):
        """A .conda from the real one with other info/pkg entries or raw zip members.

        ``members`` maps zip member names to bytes, or to None to leave one out. The
        inner tarballs are named after ``stem``, by default the file name's.
        """
        filename = filename or f"{STEM}.conda"
        stem = stem or filename.removesuffix(".conda")
        zipped = dict(self.zip_members)
        if info is not None:
            zipped[INFO] = tar_bytes(info, zstd_writer)
        if pkg is not None:
            zipped[PKG] = tar_bytes(pkg, zstd_writer)
        for name, data in (members or {}).items():
            if data is None:
                zipped.pop(name, None)
            else:
                zipped[name] = data
        renamed = {name.replace(STEM, stem): data for name, data in zipped.items()}
        return filename, zip_bytes(renamed)

    def conda_pkg_with(self, *entries):
        return self.conda(pkg=self.pkg + list(entries))

    def conda_info_with(self, *entries):
        return self.conda(info=self.info + list(entries))

    # .tar.bz2 ---------------------------------------------------------------------------

    def tar_bz2(self, entries=None, filename=None):
        entries = self.bz2_entries if entries is None else entries
        return filename or f"{STEM}.tar.bz2", tar_bytes(entries, bz2_writer)

    def tar_bz2_with(self, *entries):
        return self.tar_bz2(self.bz2_entries + list(entries))

    # info/index.json --------------------------------------------------------------------

    def index_bytes(self, change):
        """The real index.json changed by ``change(dict)``, which may return raw bytes."""
        index = dict(self.index)
        result = change(index)
        return result if isinstance(result, bytes) else json.dumps(index).encode()

    def with_index(self, change, filename=None, extension=".conda"):
        data = self.index_bytes(change)
        if extension == ".conda":
            return self.conda(info=replaced(self.info, "info/index.json", data), filename=filename)
        entries = replaced(self.bz2_entries, "info/index.json", data)
        name = filename and filename.replace(".conda", ".tar.bz2")
        return self.tar_bz2(entries, filename=name)


def setting(key, value):
    def change(index):
        if value is None:
            del index[key]
        else:
            index[key] = value

    return change


def declared_size_lie(size):
    """A pkg tar whose only member's header declares ``size`` bytes, followed by 1 KiB."""
    info = tarfile.TarInfo("share/huge.bin")
    info.size = size
    raw = info.tobuf(format=tarfile.GNU_FORMAT) + bytes(1024)
    return zstd(raw)


def damaged_header(corpus):
    """The real pkg tar plus a member whose header no longer matches its checksum."""
    raw = tar_bytes([*corpus.pkg, member("share/after.txt", b"hidden\n")])
    return corpus.conda(members={PKG: zstd(flip(raw, raw.index(b"share/after.txt")))})


def cut_inside_member(corpus):
    """The real pkg tar, ending 1000 bytes into the data of a member of 4096."""
    raw = tar_bytes([*corpus.pkg, member("share/cut-here.bin", bytes(4096))])
    return corpus.conda(members={PKG: zstd(raw[: raw.index(b"share/cut-here.bin") + 1512])})


def crc_damaged(corpus):
    """A byte of metadata.json changed after zipping: only the zip's CRC can tell."""
    _, data = corpus.conda()
    return f"{STEM}.conda", flip(data, data.index(b"conda_pkg_format_version"))


def without_subdir_and_noarch(index):
    del index["subdir"], index["noarch"]


def deep_json(corpus):
    return corpus.with_index(lambda index: b"[" * 100_000 + b"]" * 100_000)


@dataclass(frozen=True)
class Case:
    id: str
    build: object  # Corpus -> (filename, bytes)
    status: int
    words: str  # expected in the answer's message


C = Case
ARCHIVE_CASES = [
    # The outer zip of a .conda.
    C("conda-truncated", lambda c: (c.conda_path.name, c.conda_path.read_bytes()[:300]),
      422, "not a readable zip archive"),
    C("conda-without-central-directory",
      lambda c: (c.conda_path.name, c.conda_path.read_bytes()[:-40]), 422, "not a readable zip"),
    C("conda-crc-damaged", crc_damaged, 422, "corrupt (Bad CRC-32 for file 'metadata.json')"),
    C("conda-random-bytes", lambda c: (f"{STEM}.conda", bytes(range(256)) * 8), 422,
      "not a readable zip"),
    C("conda-without-info-member", lambda c: c.conda(members={INFO: None}), 422,
      f"lacks {INFO}"),
    C("conda-without-pkg-member", lambda c: c.conda(members={PKG: None}), 422, f"lacks {PKG}"),
    C("conda-inner-names-of-another-package",
      lambda c: c.conda(filename=f"{NAME}-1.1-0.conda", stem=STEM), 422,
      "lacks info-victim-1.1-0.tar.zst"),
    C("conda-two-info-members",
      lambda c: c.conda(members={INFO + ".orig": c.zip_members[INFO]}), 422, "more than one"),
    C("conda-deflated-zip-bomb",
      lambda c: (f"{STEM}.conda", zip_bytes({**c.zip_members, "extra.bin": bytes(8 * MIB)},
                                            zipfile.ZIP_DEFLATED)),
      422, "decompression bomb"),
    # The zstd streams inside a .conda.
    C("conda-info-not-zstd", lambda c: c.conda(members={INFO: c.info_tar}), 422,
      "not a readable conda archive"),
    C("conda-info-zstd-truncated", lambda c: c.conda(members={INFO: c.zip_members[INFO][:-8]}),
      422, "not a readable conda archive"),
    C("conda-pkg-zstd-truncated", lambda c: c.conda(members={PKG: c.zip_members[PKG][:-8]}),
      422, "not a readable conda archive"),
    C("conda-pkg-zstd-bad-frame-header",
      lambda c: c.conda(members={PKG: flip(c.zip_members[PKG], 4)}), 422,
      "not a readable conda archive"),
    C("conda-pkg-not-a-tar", lambda c: c.conda(members={PKG: zstd(b"no tar here" * 100)}), 422,
      "tar archive is damaged or truncated"),
    C("conda-pkg-tar-cut-inside-a-member", cut_inside_member, 422, "unexpected end of data"),
    C("conda-pkg-tar-damaged-header", damaged_header, 422, "damaged or truncated"),
    # .tar.bz2 streams.
    C("tar-bz2-truncated", lambda c: (c.tar_bz2_path.name, c.tar_bz2_path.read_bytes()[:-30]),
      422, "not a readable conda archive"),
    C("tar-bz2-corrupt",
      lambda c: (c.tar_bz2_path.name, flip(c.tar_bz2_path.read_bytes(), 200)), 422,
      "not a readable conda archive"),
    C("tar-bz2-that-is-gzip",
      lambda c: (c.tar_bz2_path.name, gzip.compress(tar_bytes(c.bz2_entries))), 422,
      "not a readable conda archive"),
    # Member paths and links that would land outside the environment.
    C("pkg-member-dotdot", lambda c: c.conda_pkg_with(member("../evil.sh")), 422,
      "'../evil.sh', a path outside the package"),
    C("pkg-member-nested-dotdot", lambda c: c.conda_pkg_with(member("lib/../../evil.sh")), 422,
      "a path outside the package"),
    C("pkg-member-absolute", lambda c: c.conda_pkg_with(member("/tmp/evil.sh")), 422,
      "absolute path '/tmp/evil.sh'"),
    C("pkg-member-windows-dotdot", lambda c: c.conda_pkg_with(member("..\\evil.bat")), 422,
      "a path outside the package"),
    C("pkg-member-windows-drive", lambda c: c.conda_pkg_with(member("C:\\evil.bat")), 422,
      "absolute path"),
    C("info-member-dotdot", lambda c: c.conda_info_with(member("info/../../evil.sh")), 422,
      "a path outside the package"),
    C("tar-bz2-member-dotdot", lambda c: c.tar_bz2_with(member("../evil.sh")), 422,
      "a path outside the package"),
    C("tar-bz2-member-absolute", lambda c: c.tar_bz2_with(member("/etc/evil.conf")), 422,
      "absolute path"),
    C("pkg-symlink-outside", lambda c: c.conda_pkg_with(symlink("lib/passwd", "../../etc/passwd")),
      422, "symlink to '../../etc/passwd', outside the package"),
    C("pkg-symlink-absolute", lambda c: c.conda_pkg_with(symlink("lib/passwd", "/etc/passwd")),
      422, "symlink to the absolute path '/etc/passwd'"),
    C("pkg-symlink-chain",
      lambda c: c.conda_pkg_with(symlink("lib/here", "."), symlink("lib/here/up", "../..")),
      422, "lies under the symlink 'lib/here'"),
    C("tar-bz2-symlink-outside", lambda c: c.tar_bz2_with(symlink("bin/sh", "../../bin/sh")),
      422, "outside the package"),
    C("info-index-json-symlink",
      lambda c: c.conda(info=replaced(c.info, "info/index.json", None)
                        + [symlink("info/index.json", "/etc/passwd")]),
      422, "symlink to the absolute path"),
    C("pkg-hardlink-outside", lambda c: c.conda_pkg_with(hardlink("bin/x", "../etc/passwd")), 422,
      "hard link to '../etc/passwd', outside the package"),
    C("tar-bz2-hardlink-absolute", lambda c: c.tar_bz2_with(hardlink("bin/x", "/etc/passwd")),
      422, "hard link"),
    C("pkg-device", lambda c: c.conda_pkg_with(member("dev/sda", b"", type=tarfile.BLKTYPE)), 422,
      "device or FIFO"),
    C("pkg-fifo", lambda c: c.conda_pkg_with(member("tmp/pipe", b"", type=tarfile.FIFOTYPE)), 422,
      "device or FIFO"),
    C("pkg-overlong-path", lambda c: c.conda_pkg_with(member("a/" * 2100 + "x")), 422,
      "longer than 4096"),
    # Decompression bombs (the tests set WHARF_MAX_UNPACKED_SIZE to UNPACKED_LIMIT).
    C("pkg-zstd-bomb", lambda c: c.conda_pkg_with(member("z.bin", Zeros(64 * MIB), size=64 * MIB)),
      422, "decompression bomb"),
    C("pkg-header-declares-a-tebibyte",
      lambda c: c.conda(members={PKG: declared_size_lie(2**40)}), 422, "decompression bomb"),
    C("info-zstd-bomb",
      lambda c: c.conda_info_with(member("info/z.bin", Zeros(64 * MIB), size=64 * MIB)), 422,
      "decompression bomb"),
    C("pkg-many-empty-members",
      lambda c: c.conda_pkg_with(*(member(f"e/{i}", b"") for i in range(5000))), 422,
      "decompression bomb"),
    C("tar-bz2-bomb",
      lambda c: c.tar_bz2_with(member("z.bin", Zeros(16 * MIB), size=16 * MIB)), 422,
      "decompression bomb"),
    C("pkg-huge-pax-header",
      lambda c: c.conda_pkg_with(member("x", pax_headers={"comment": "x" * (3 * MIB // 2)})),
      422, "extended header"),
    # info/index.json and the other metadata.
    C("conda-without-index-json", lambda c: c.conda(info=replaced(c.info, "info/index.json", None)),
      422, "has no info/index.json"),
    C("tar-bz2-without-index-json",
      lambda c: c.tar_bz2(replaced(c.bz2_entries, "info/index.json", None)), 422,
      "has no info/index.json"),
    C("index-not-json", lambda c: c.with_index(lambda i: b"{not json"), 422,
      "info/index.json is not valid UTF-8 JSON"),
    C("index-not-utf8", lambda c: c.with_index(lambda i: b'{"name": "caf\xe9"}'), 422,
      "info/index.json is not valid UTF-8 JSON"),
    C("index-not-an-object", lambda c: c.with_index(lambda i: b'["victim"]'), 422,
      "must hold a JSON object"),
    C("index-huge", lambda c: c.with_index(lambda i: b" " * (16 * MIB + 1) + b"{}"), 422,
      "info/index.json is larger than 16 MiB"),
    C("index-nested-too-deep", deep_json, 422, "info/index.json is not valid UTF-8 JSON"),
    *(
        C(f"index-without-{key}", lambda c, key=key: c.with_index(setting(key, None)), 422,
          f"info/index.json has no '{key}'")
        for key in ("name", "version", "build", "build_number")
    ),
    C("index-without-subdir-or-noarch", lambda c: c.with_index(without_subdir_and_noarch), 422,
      "info/index.json has no 'subdir'"),
    C("index-name-not-a-string", lambda c: c.with_index(setting("name", 7)), 422,
      "'name' must be a non-empty string, not 7"),
    C("index-build-number-a-string", lambda c: c.with_index(setting("build_number", "0")), 422,
      "'build_number' must be a whole number"),
    C("index-build-number-true", lambda c: c.with_index(setting("build_number", True)), 422,
      "'build_number' must be a whole number, not true"),
    C("index-build-number-negative", lambda c: c.with_index(setting("build_number", -1)), 422,
      "'build_number' must be a whole number, not -1"),
    C("index-timestamp-a-string", lambda c: c.with_index(setting("timestamp", "yesterday")), 422,
      "'timestamp' must be a whole number"),
    C("index-depends-a-string", lambda c: c.with_index(setting("depends", "python")), 422,
      "'depends' must be a list of strings"),
    C("index-constrains-of-numbers", lambda c: c.with_index(setting("constrains", [1])), 422,
      "'constrains' must be a list of strings"),
    C("index-depends-bad-spec", lambda c: c.with_index(setting("depends", ["python >=<3"])),
      422, "depends entry 'python >=<3' is not a valid match spec"),
    C("index-constrains-bad-spec",
      lambda c: c.with_index(setting("constrains", ["numpy [version="])), 422,
      "constrains entry 'numpy [version=' is not a valid match spec"),
    C("index-bad-version",
      lambda c: c.with_index(setting("version", "1..0"), filename=f"{NAME}-1..0-0.conda"), 422,
      "version '1..0' is not a valid conda version"),
    C("index-version-with-dash",
      lambda c: c.with_index(setting("version", "1.0-1"), filename=f"{NAME}-1.0-1-0.conda"), 422,
      "version '1.0-1' contains '-'"),
    C("index-build-with-space",
      lambda c: c.with_index(setting("build", "py 0"), filename=f"{NAME}-1.0-py 0.conda"), 422,
      "build 'py 0' contains ' '"),
    C("index-bad-name",
      lambda c: c.with_index(setting("name", "Vic Tim"), filename="Vic Tim-1.0-0.conda"), 422,
      "'Vic Tim' is not a valid package name"),
    C("index-name-disagrees", lambda c: c.with_index(setting("name", "other")), 422,
      f"must be named 'other-1.0-0.conda', not '{STEM}.conda'"),
    C("index-version-disagrees", lambda c: c.with_index(setting("version", "2.0")), 422,
      f"must be named 'victim-2.0-0.conda', not '{STEM}.conda'"),
    C("index-build-disagrees", lambda c: c.with_index(setting("build", "1")), 422,
      f"must be named 'victim-1.0-1.conda', not '{STEM}.conda'"),
    C("tar-bz2-index-name-disagrees",
      lambda c: c.with_index(setting("name", "other"), extension=".tar.bz2"), 422,
      "must be named 'other-1.0-0.tar.bz2'"),
    C("index-unknown-subdir", lambda c: c.with_index(setting("subdir", "linux-128")), 422,
      "subdir 'linux-128' is not a known platform"),
    C("index-noarch-in-a-platform-subdir", lambda c: c.with_index(setting("subdir", "linux-64")),
      422, "says noarch 'generic' but subdir 'linux-64'"),
    C("index-license-not-a-string", lambda c: c.with_index(setting("license", 3)), 422,
      "cannot be read by conda clients"),
    C("about-json-invalid",
      lambda c: c.conda(info=replaced(c.info, "info/about.json", b"{")), 422,
      "info/about.json is not valid UTF-8 JSON"),
    C("run-exports-not-an-object", lambda c: c.conda_info_with(member("info/run_exports.json",
                                                                      b"[1]")),
      422, "info/run_exports.json must hold a JSON object"),
]  # fmt: skip
