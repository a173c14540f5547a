"""Real conda packages for tests, built with rattler-build's assembler."""

import hashlib
import time
from pathlib import Path

import rattler_build

from packages_app.models import MAIN_LABEL, FileLabel, PackageFile, SubdirIndex

EXTENSION = {
    ".conda": rattler_build.ArchiveType.Conda,
    ".tar.bz2": rattler_build.ArchiveType.TarBz2,
}


class PackageFactory:
    def __init__(self, folder):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.files = self.folder / "_files"
        self.files.mkdir(exist_ok=True)
        (self.files / "README.txt").write_text("a test package\n")

    def make(
        self,
        name="demo",
        version="1.0.0",
        subdir="noarch",
        build=None,
        depends=(),
        extension=".conda",
        summary="A demo package",
        license="MIT",
        **extra,
    ):
        build = build or ("0" if subdir == "noarch" else "h1234_0")
        out = self.folder / subdir
        out.mkdir(exist_ok=True)
        output = rattler_build.assemble_package(
            name,
            version,
            subdir,
            build,
            out,
            files_dir=self.files,
            depends=list(depends),
            noarch="generic" if subdir == "noarch" else None,
            summary=summary,
            license=license,
            archive_type=EXTENSION[extension],
            **extra,
        )
        return Path(output.path)


def sha256_of(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def wait_for_index(channel, subdir, timeout=60, label="main"):
    """Wait until the (channel, label, subdir) index reflects every committed change."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        index = SubdirIndex.objects.filter(channel=channel, label=label, subdir=subdir).first()
        if index is not None and index.is_current:
            return index
        time.sleep(0.05)
    raise AssertionError(f"{channel}/{subdir} was not indexed within {timeout} s")


def multipart_body(path, *, filename=None, sha256=None, field="file", before=(), after=()):
    """A body shaped as rattler-build's prefix upload sends it (part headers included),
    with the text fields ``before`` and ``after`` ((name, value) pairs) around the file."""
    data = Path(path).read_bytes()
    filename = filename or Path(path).name
    sha256 = sha256 or hashlib.sha256(data).hexdigest()
    boundary = "wharf-test-boundary"

    def text(fields):
        return "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            for name, value in fields
        ).encode()

    head = (
        text(before)
        + (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            "content-type: application/octet-stream\r\n"
            f"content-length: {len(data)}\r\n"
            f"x-file-name: {filename}\r\n"
            f"x-file-sha256: {sha256}\r\n\r\n"
        ).encode()
    )
    body = head + data + b"\r\n" + text(after) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def publish(client_for, channel, *paths):
    """Upload ``paths`` as the channel's owner and wait until they are indexed."""
    owner = client_for("owner")
    for path in paths:
        response = upload(owner, channel.name, path)
        assert response.status_code == 201, response.content
    for subdir in {path.parent.name for path in paths}:
        wait_for_index(channel, subdir)


def upload(client, channel_name, path, *, force=False, **kwargs):
    body, content_type = multipart_body(path, **kwargs)
    url = f"/api/v1/upload/{channel_name}" + ("?force=true" if force else "")
    return client.generic("POST", url, body, content_type=content_type)


def eventually(check, timeout=30):
    """Retry ``check`` until it stops raising AssertionError (work a worker finishes)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def catalog_file(channel, subdir, name, version, **fields):
    """A PackageFile row as an upload records it, without an archive behind it (for
    listings and search; call ``catalog.refresh`` after), labelled main."""
    package_file = PackageFile.objects.create(
        channel=channel,
        subdir=subdir,
        filename=f"{name}-{version}-0.conda",
        name=name,
        version=version,
        build="0",
        size=1,
        sha256="0" * 64,
        md5="0" * 32,
        record_json="{}",
        storage_path=f"unused/{subdir}/{name}",
        **fields,
    )
    FileLabel.objects.create(file=package_file, label=MAIN_LABEL)
    return package_file
