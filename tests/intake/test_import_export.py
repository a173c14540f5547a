"""Moving channels in and out: ``import_channel`` reads a channel directory that rattler-index
wrote, ``export_channel`` writes one that any web server can serve."""

import asyncio
import hashlib
import io
import shutil
from pathlib import Path

import orjson
import pytest
import rattler
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from accounts.models import AuditEvent
from channels_app.lifecycle import create_channel
from channels_app.models import Channel
from packages_app.files import deleting
from packages_app.index import storage_check
from packages_app.models import PackageFile, StagedFile

from ..packages import PackageFactory, eventually, sha256_of, upload, wait_for_index

pytestmark = pytest.mark.django_db(transaction=True)

INDEX_FILES = (
    "repodata.json",
    "repodata.json.zst",
    "repodata.json.bz2",
    "repodata_shards.msgpack.zst",
)


def body(response):
    assert response.status_code == 200, response
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def run(*args):
    """Run a management command; return (stdout, stderr, the CommandError or None)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
    except CommandError as exc:
        return out.getvalue(), err.getvalue(), exc
    return out.getvalue(), err.getvalue(), None


def place(path, folder, name=None):
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(path, folder / (name or path.name)))


def without_timestamps(repodata):
    for key in ("packages", "packages.conda"):
        for record in repodata[key].values():
            record.pop("indexed_timestamp", None)
    return repodata


def stored_objects(folder):
    """Every object below ``folder`` in storage."""
    return set(storage_check.stored_objects(folder))


def served_repodata(client, channel, subdir):
    return without_timestamps(orjson.loads(body(client.get(f"/{channel}/{subdir}/repodata.json"))))


@pytest.fixture
def good_files(packages):
    """Package files for four subdirs, .conda and .tar.bz2."""
    return [
        packages.make("app", "1.0", "linux-64", depends=["lib >=2"]),
        packages.make("app", "1.1", "linux-64", depends=["lib >=2"], extension=".tar.bz2"),
        packages.make("tool", "0.3", "linux-64"),
        packages.make("app", "1.0", "osx-arm64", depends=["lib >=2"]),
        packages.make("app", "1.0", "win-64"),
        packages.make("lib", "2.0", "noarch", license="BSD-3-Clause", summary="The lib"),
        packages.make("lib", "2.1", "noarch", extension=".tar.bz2"),
    ]


@pytest.fixture
def channel_dir(tmp_path, good_files, packages):
    """A channel directory as rattler-index leaves it, with a few files that must be refused:
    a corrupt archive, a linux-64 package in osx-64/, one outside any subdir folder."""
    root = tmp_path / "channel"
    for path in good_files:
        place(path, root / path.parent.name)
    asyncio.run(rattler.index.index_fs(root))
    assert (root / "linux-64" / "repodata.json").is_file()
    assert (root / "linux-64" / "repodata_shards.msgpack.zst").is_file()
    (root / "linux-64" / "broken-1.0-h1234_0.conda").write_bytes(b"PK\x03\x04 not a package")
    wrong = packages.make("wrongdir", "1.0", "linux-64")
    place(wrong, root / "osx-64")
    place(packages.make("stray", "1.0", "noarch"), root)
    return root


def test_it_imports_a_rattler_index_directory_as_uploads_would(
    channel_dir, good_files, public_channel, users, client_for
):
    out, err, error = run("import_channel", str(channel_dir), "--channel", public_channel.name)

    assert "3 of 10 files were refused" in str(error)
    assert "\n  linux-64/broken-1.0-h1234_0.conda: The .conda file is corrupt or truncated" in err
    assert (
        "\n  osx-64/wrongdir-1.0-h1234_0.conda: info/index.json says subdir 'linux-64' but "
        "the file is in the folder 'osx-64/'; move it to 'linux-64/'." in err
    )
    assert "\n  stray-1.0-0.conda: Not in a subdir folder" in err
    assert "Imported 7 files" in out
    files = PackageFile.objects.filter(channel=public_channel)
    assert sorted(files.values_list("subdir", "filename")) == sorted(
        (p.parent.name, p.name) for p in good_files
    )
    for path in good_files:
        row = files.get(filename=path.name, subdir=path.parent.name)
        assert row.sha256 == sha256_of(path)
        with default_storage.open(row.storage_path, "rb") as handle:
            assert handle.read() == path.read_bytes()

    # What clients are served is what uploading the same files produces, and what
    # rattler-index wrote (the moment of indexing aside).
    uploaded = create_channel(users["owner"], "uploaded")
    for path in good_files:
        assert upload(client_for("owner"), "uploaded", path).status_code == 201
    anonymous = client_for()
    for subdir in ("linux-64", "osx-arm64", "win-64", "noarch"):
        wait_for_index(public_channel, subdir)
        wait_for_index(uploaded, subdir)
        imported = served_repodata(anonymous, public_channel.name, subdir)
        assert imported == served_repodata(anonymous, "uploaded", subdir)
        written = orjson.loads((channel_dir / subdir / "repodata.json").read_bytes())
        assert imported["packages.conda"] == without_timestamps(written)["packages.conda"]
        assert imported["packages"] == written["packages"]


def test_it_records_each_imported_file_and_the_import_in_the_audit_log(
    channel_dir, good_files, public_channel, users
):
    run("import_channel", str(channel_dir), "--channel", public_channel.name, "--owner", "owner")

    events = AuditEvent.objects.filter(channel=public_channel)
    imported = events.filter(action="package.imported")
    assert sorted(e.details["filename"] for e in imported) == sorted(p.name for p in good_files)
    assert {e.actor for e in imported} == {users["owner"]}
    assert {e.details["source"] for e in imported} == {str(channel_dir)}
    summary = events.get(action="channel.imported")
    assert summary.details == {
        "source": str(channel_dir),
        "imported": 7,
        "skipped": 0,
        "refused": 3,
        "bytes": sum(p.stat().st_size for p in good_files),
    }
    assert set(PackageFile.objects.values_list("uploader", flat=True)) == {users["owner"].pk}


def test_it_skips_files_already_there_and_never_changes_a_stored_file(
    tmp_path, packages, public_channel, client_for
):
    same = packages.make("same", "1.0", "noarch")
    clash = packages.make("clash", "1.0", "noarch", summary="The one in the channel")
    for path in (same, clash):
        assert upload(client_for("owner"), public_channel.name, path).status_code == 201
    stored = PackageFile.objects.get(filename=clash.name)
    root = tmp_path / "mirror"
    place(same, root / "noarch")
    other = PackageFactory(tmp_path / "other").make("clash", "1.0", "noarch", summary="Another")
    place(other, root / "noarch")
    assert sha256_of(other) != sha256_of(clash)

    out, err, error = run("import_channel", str(root), "--channel", public_channel.name)

    assert "1 of 2 files were refused" in str(error)
    assert (
        "noarch/clash-1.0-0.conda: open-tools/noarch/clash-1.0-0.conda is already in the "
        "channel with other content "
        f"(sha256 {stored.sha256}, this file {sha256_of(other)}); the stored file was left "
        "as it is." in err
    )
    assert "Imported 0 files (0 bytes) into 'open-tools'; 1 were there already" in out
    after = PackageFile.objects.get(filename=clash.name)
    assert (after.pk, after.sha256, after.storage_path) == (
        stored.pk,
        stored.sha256,
        stored.storage_path,
    )
    with default_storage.open(after.storage_path, "rb") as handle:
        assert handle.read() == clash.read_bytes()
    assert PackageFile.objects.count() == 2


def test_it_refuses_files_past_the_channel_quota_as_an_upload_would(
    tmp_path, packages, public_channel
):
    files = [packages.make(f"pkg{i}", "1.0", "noarch") for i in range(4)]
    root = tmp_path / "channel"
    for path in files:
        place(path, root / "noarch")
    sizes = [path.stat().st_size for path in files]
    public_channel.quota_bytes = sizes[0] + sizes[1] + sizes[2] // 2
    public_channel.save()

    out, err, error = run(
        "import_channel", str(root), "--channel", public_channel.name, "--batch-size", "3"
    )

    assert "2 of 4 files were refused" in str(error)
    quota = public_channel.quota_bytes
    assert (
        f"noarch/pkg2-1.0-0.conda: Channel 'open-tools' would exceed its storage quota of {quota} "
        f"bytes: it holds {sizes[0] + sizes[1]} bytes and this package has {sizes[2]}. Delete "
        "files or ask a site administrator for a larger quota." in err
    )
    assert "pkg3-1.0-0.conda: Channel 'open-tools' would exceed its storage quota" in err
    assert sorted(PackageFile.objects.values_list("name", flat=True)) == ["pkg0", "pkg1"]
    # Nothing refused was left in storage.
    assert stored_objects(f"packages/{public_channel.pk}") == set(
        PackageFile.objects.values_list("storage_path", flat=True)
    )


def test_it_creates_the_channel_only_when_asked(tmp_path, packages, users):
    root = tmp_path / "channel"
    place(packages.make("lib", "1.0", "noarch"), root / "noarch")

    _, _, missing = run("import_channel", str(root), "--channel", "robotics")
    _, _, ownerless = run("import_channel", str(root), "--channel", "robotics", "--create")
    out, _, error = run(
        "import_channel", str(root), "--channel", "robotics", "--create", "--private",
        "--owner", "owner", "--description", "Our libraries",
    )  # fmt: skip

    assert "Channel 'robotics' does not exist; add --create --owner USERNAME" in str(missing)
    assert "--create needs --owner USERNAME" in str(ownerless)
    assert error is None
    assert "Created private channel 'robotics'." in out
    channel = Channel.objects.get(name="robotics")
    assert channel.private and channel.description == "Our libraries"
    assert channel.role_of(users["owner"]) == "owner"
    assert AuditEvent.objects.filter(channel=channel, action="channel.created").count() == 1
    assert PackageFile.objects.filter(channel=channel).count() == 1


def test_it_refuses_an_uploader_without_the_right_to_upload(tmp_path, packages, public_channel):
    root = tmp_path / "channel"
    place(packages.make("lib", "1.0", "noarch"), root / "noarch")

    _, _, member = run(
        "import_channel", str(root), "--channel", public_channel.name, "--owner", "member"
    )
    _, _, private = run("import_channel", str(root), "--channel", public_channel.name, "--private")

    assert "member: You may not upload in channel 'open-tools' as member." in str(member)
    assert "exists and is public; --private does not change that" in str(private)
    assert not PackageFile.objects.exists()


def test_it_imports_only_the_subdirs_asked_for(channel_dir, public_channel):
    out, err, error = run(
        "import_channel", str(channel_dir), "--channel", public_channel.name,
        "--subdir", "noarch", "--subdir", "win-64",
    )  # fmt: skip
    _, _, unknown = run(
        "import_channel", str(channel_dir), "--channel", public_channel.name, "--subdir", "beos"
    )

    assert error is None and err == ""
    assert sorted(PackageFile.objects.values_list("subdir", "filename")) == [
        ("noarch", "lib-2.0-0.conda"),
        ("noarch", "lib-2.1-0.tar.bz2"),
        ("win-64", "app-1.0-h1234_0.conda"),
    ]
    assert "Unknown subdir beos." in str(unknown)


@pytest.fixture
def many_files(tmp_path, packages):
    root = tmp_path / "many"
    files = []
    for i in range(12):
        subdir = ("linux-64", "noarch")[i % 2]
        files.append(place(packages.make(f"many{i}", "1.0", subdir), root / subdir))
    return root, files


def test_an_import_killed_between_storing_and_committing_finishes_exactly_when_run_again(
    many_files, public_channel, processes, client_for
):
    root, files = many_files
    argv = ["manage.py", "import_channel", str(root), "--channel", public_channel.name,
            "--batch-size", "3", "--workers", "2"]  # fmt: skip
    staged = StagedFile.objects.filter(channel=public_channel)

    def second_batch_stored():
        paths = list(staged.values_list("storage_path", flat=True))
        committed = PackageFile.objects.filter(channel=public_channel).count()
        return committed >= 3 and len(paths) == 3 and all(map(default_storage.exists, paths))

    # Each batch waits 10 s between storing and committing: the first commits, and the
    # second is killed in its wait, with time to spare on a busy machine.
    doomed = processes.start(
        "import", ["-m", "tests.paused", "import", "10", *argv], ready=second_batch_stored
    )
    # Another import into the channel waits for this one.
    _, _, busy = run("import_channel", str(root), "--channel", public_channel.name)
    processes.kill(doomed)

    assert f"Another import into channel '{public_channel.name}' is running" in str(busy)
    committed = set(PackageFile.objects.values_list("storage_path", flat=True))
    orphans = stored_objects(f"packages/{public_channel.pk}") - committed
    assert orphans and orphans == set(staged.values_list("storage_path", flat=True))

    out = processes.run(argv[:-2])

    assert f"Deleted {len(orphans)} stored files an interrupted import had left." in out
    assert f"Imported {12 - len(committed)} files" in out
    rows = PackageFile.objects.filter(channel=public_channel)
    assert sorted(rows.values_list("filename", flat=True)) == sorted(p.name for p in files)
    assert stored_objects(f"packages/{public_channel.pk}") == set(
        rows.values_list("storage_path", flat=True)
    )
    assert not staged.exists()
    events = AuditEvent.objects.filter(action="package.imported")
    assert sorted(events.values_list("details__filename", flat=True)) == sorted(
        p.name for p in files
    )
    for subdir in ("linux-64", "noarch"):
        wait_for_index(public_channel, subdir)
        served = served_repodata(client_for(), public_channel.name, subdir)
        assert sorted(served["packages.conda"]) == sorted(
            p.name for p in files if p.parent.name == subdir
        )


# -- export ------------------------------------------------------------------------------


@pytest.fixture
def imported(channel_dir, good_files, public_channel):
    run("import_channel", str(channel_dir), "--channel", public_channel.name)
    for subdir in ("linux-64", "osx-arm64", "win-64", "noarch"):
        wait_for_index(public_channel, subdir)
    return public_channel


def test_it_exports_the_bytes_wharf_serves(imported, good_files, tmp_path, client_for):
    target = tmp_path / "export" / imported.name
    out, _, error = run("export_channel", imported.name, str(target))

    assert error is None, error
    anonymous = client_for()
    for subdir in ("linux-64", "osx-arm64", "win-64", "noarch"):
        for name in INDEX_FILES:
            exported = (target / subdir / name).read_bytes()
            url = f"/{imported.name}/{subdir}/{name}"
            eventually(lambda url=url, exported=exported: _same(anonymous.get(url), exported))
        shards = list((target / subdir / "shards").iterdir())
        assert shards
        for shard in shards:
            served = body(anonymous.get(f"/{imported.name}/{subdir}/shards/{shard.name}"))
            assert shard.read_bytes() == served
            assert hashlib.sha256(served).hexdigest() + ".msgpack.zst" == shard.name
    for path in good_files:
        assert (target / path.parent.name / path.name).read_bytes() == path.read_bytes()
    assert not list(target.glob("*/*broken*"))
    channeldata = orjson.loads((target / "channeldata.json").read_bytes())
    assert channeldata == orjson.loads(body(anonymous.get(f"/{imported.name}/channeldata.json")))
    assert "already up to date" in out


def _same(response, exported):
    assert body(response) == exported


def test_a_yanked_file_is_exported_and_imported_as_yanked(
    imported, good_files, tmp_path, client_for, users
):
    linux = [path for path in good_files if path.parent.name == "linux-64"]
    yanked, kept = linux[0], linux[1:]
    url = f"/api/v1/yank/{imported.name}/linux-64/{yanked.name}"
    assert client_for("owner").post(url, {"reason": "bad build"}, format="json").status_code == 200
    wait_for_index(imported, "linux-64")
    target = tmp_path / "export" / imported.name

    _, _, error = run("export_channel", imported.name, str(target))

    assert error is None, error
    assert (target / "linux-64" / yanked.name).read_bytes() == yanked.read_bytes()
    exported = orjson.loads((target / "linux-64" / "repodata.json").read_bytes())
    assert exported["removed"] == [yanked.name]
    assert yanked.name not in exported["packages"] | exported["packages.conda"]

    _, _, error = run(
        "import_channel", str(target), "--channel", "copy", "--create", "--owner", "owner"
    )

    assert error is None, error
    copy = Channel.objects.get(name="copy")
    rows = {f.filename: f for f in PackageFile.objects.filter(channel=copy, subdir="linux-64")}
    assert rows[yanked.name].yanked_at is not None
    assert (
        rows[yanked.name].yank_reason
        == "Listed in 'removed' of the imported linux-64/repodata.json."
    )
    assert [rows[path.name].yanked_at for path in kept] == [None] * len(kept)
    wait_for_index(copy, "linux-64")
    served = served_repodata(client_for(), "copy", "linux-64")
    assert served["removed"] == [yanked.name]


@pytest.fixture
def labelled(imported, good_files, client_for):
    """``imported`` with app 1.0 (linux-64) in main and dev, tool 0.3 in dev only and
    lib 2.1 (noarch) in rc only; returns {(subdir, filename): labels}."""
    wanted = {
        ("linux-64", "app-1.0-h1234_0.conda"): ["dev", "main"],
        ("linux-64", "tool-0.3-h1234_0.conda"): ["dev"],
        ("noarch", "lib-2.1-0.tar.bz2"): ["rc"],
    }
    owner = client_for("owner")
    for (subdir, filename), labels in wanted.items():
        url = f"/api/v1/channels/{imported.name}/files/{subdir}/{filename}/labels/"
        assert owner.post(url, {"labels": labels}, format="json").status_code == 200
    for label, subdir in [("main", "linux-64"), ("main", "noarch"), ("dev", "linux-64"),
                          ("dev", "noarch"), ("rc", "noarch")]:  # fmt: skip
        wait_for_index(imported, subdir, label=label)
    files = [(path.parent.name, path.name) for path in good_files]
    return {key: wanted.get(key, ["main"]) for key in files}


def test_labels_are_exported_where_wharf_serves_them_and_imported_back(
    imported, labelled, good_files, tmp_path, client_for
):
    target = tmp_path / "export"
    out, _, error = run("export_channel", imported.name, str(target))

    assert error is None, error
    anonymous = client_for()
    dev = target / "label" / "dev"
    for folder, base in [(dev / "linux-64", f"/{imported.name}/label/dev/linux-64"),
                         (dev / "noarch", f"/{imported.name}/label/dev/noarch"),
                         (target / "label" / "rc" / "noarch", f"/{imported.name}/label/rc/noarch"),
                         (target / "linux-64", f"/{imported.name}/linux-64")]:  # fmt: skip
        for name in INDEX_FILES:
            url = f"{base}/{name}"
            exported = (folder / name).read_bytes()
            eventually(lambda url=url, exported=exported: _same(anonymous.get(url), exported))
        for shard in folder.glob("shards/*"):  # an empty subdir has none
            assert shard.read_bytes() == body(anonymous.get(f"{base}/shards/{shard.name}"))
    assert sorted(p.name for p in (dev / "linux-64").glob("*.conda")) == [
        "app-1.0-h1234_0.conda", "tool-0.3-h1234_0.conda"
    ]  # fmt: skip
    assert not (target / "linux-64" / "tool-0.3-h1234_0.conda").exists()
    assert not (target / "noarch" / "lib-2.1-0.tar.bz2").exists()
    # The same bytes once on disk: the dev copy of app 1.0 is main's, linked.
    assert (dev / "linux-64" / "app-1.0-h1234_0.conda").samefile(
        target / "linux-64" / "app-1.0-h1234_0.conda"
    )
    assert "1 linked to a copy in another label" in out
    channeldata = orjson.loads((dev / "channeldata.json").read_bytes())
    assert channeldata == orjson.loads(
        body(anonymous.get(f"/{imported.name}/label/dev/channeldata.json"))
    )
    again, _, _ = run("export_channel", imported.name, str(target))
    assert "0 files written (0 bytes)" in again
    # A real client reads a label of the copy as it reads the label's URL.
    records = asyncio.run(rattler.solve([dev.as_uri()], ["tool"], platforms=["linux-64"]))
    assert [str(r.version) for r in records] == ["0.3"]

    _, _, error = run(
        "import_channel", str(target), "--channel", "copy", "--create", "--owner", "owner"
    )

    assert error is None, error
    copy = Channel.objects.get(name="copy")
    rows = PackageFile.objects.filter(channel=copy).prefetch_related("labels")
    carried = {(f.subdir, f.filename): sorted(lb.label for lb in f.labels.all()) for f in rows}
    assert carried == labelled
    for label, subdir in [("main", "linux-64"), ("dev", "linux-64"), ("rc", "noarch")]:
        wait_for_index(copy, subdir, label=label)
        prefix = "" if label == "main" else f"/label/{label}"
        assert served_repodata(anonymous, f"copy{prefix}", subdir) == served_repodata(
            anonymous, f"{imported.name}{prefix}", subdir
        )


def test_it_refuses_label_folders_it_cannot_import_naming_why(tmp_path, packages, public_channel):
    root = tmp_path / "channel"
    app = packages.make("app", "1.0", "linux-64")
    place(app, root / "linux-64")
    other = packages.make("app", "1.0", "linux-64", depends=["other"])  # same name, other bytes
    place(other, root / "label" / "dev" / "linux-64")
    bad = place(packages.make("bad", "1.0", "linux-64"), root / "label" / "Not Ok" / "linux-64")

    _, err, error = run("import_channel", str(root), "--channel", public_channel.name)

    assert "2 of 3 files were refused" in str(error)
    assert "In label/Not Ok/: 'Not Ok' is not a label name" in err
    assert f"label/dev/linux-64/app-1.0-h1234_0.conda: Not the same file as {root}/linux-64/" in err
    assert not PackageFile.objects.filter(filename=bad.name).exists()
    stored = PackageFile.objects.get(channel=public_channel, filename=app.name)
    assert stored.labels.count() == 1


def test_an_export_is_incremental_and_replaces_what_is_wrong(imported, tmp_path, client_for):
    target = tmp_path / "export"
    run("export_channel", imported.name, str(target))
    app = target / "linux-64" / "app-1.0-h1234_0.conda"
    whole = app.read_bytes()
    app.write_bytes(whole[:100])  # a damaged copy
    (target / "linux-64" / ".wharf-export-abc123").write_bytes(b"left by a killed export")
    gone = PackageFile.objects.get(filename="tool-0.3-h1234_0.conda")
    deleting.delete_package_file(gone)
    wait_for_index(imported, "linux-64")

    out, _, _ = run("export_channel", imported.name, str(target))
    again, _, _ = run("export_channel", imported.name, str(target), "--prune")

    assert app.read_bytes() == whole
    assert not (target / "linux-64" / ".wharf-export-abc123").exists()
    assert "2 files in" in out and "--prune deletes them" in out  # the file and its shard
    assert "0 files written (0 bytes)" in again
    assert not (target / "linux-64" / "tool-0.3-h1234_0.conda").exists()
    shards = {p.name for p in (target / "linux-64" / "shards").iterdir()}
    assert len(shards) == 1  # app's; tool's went with it
    listed = orjson.loads((target / "linux-64" / "repodata.json").read_bytes())
    assert "tool-0.3-h1234_0.conda" not in listed["packages.conda"]


def test_an_export_checks_every_file_against_its_sha256(imported, tmp_path):
    row = PackageFile.objects.get(filename="lib-2.0-0.conda")
    with default_storage.open(row.storage_path, "wb") as handle:
        handle.write(b"bit rot")
    target = tmp_path / "export"

    _, err, error = run("export_channel", imported.name, str(target))

    assert "1 files could not be exported" in str(error)
    assert f"hash to {hashlib.sha256(b'bit rot').hexdigest()}, not {row.sha256}" in err
    assert not (target / "noarch" / "lib-2.0-0.conda").exists()
    assert not list((target / "noarch").glob(".wharf-export-*"))
    assert (target / "noarch" / "lib-2.1-0.tar.bz2").is_file()


def test_an_empty_channel_exports_an_empty_noarch_index(private_channel, tmp_path):
    _, err, error = run("export_channel", private_channel.name, str(tmp_path / "out"))

    assert error is None
    assert "is private: the copy has no access control" in err
    repodata = orjson.loads((tmp_path / "out" / "noarch" / "repodata.json").read_bytes())
    assert repodata["packages"] == repodata["packages.conda"] == {}
    assert repodata["info"] == {"subdir": "noarch"}


def test_py_rattler_installs_from_the_exported_directory(imported, tmp_path, processes):
    root = tmp_path / "static"
    run("export_channel", imported.name, str(root / imported.name))
    port = processes.free_port()
    server = processes.start(
        "http.server",
        ["-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(root)],
        ready=lambda: processes.accepts_connections(port),
    )
    url = f"http://127.0.0.1:{port}/{imported.name}"

    sharded = install(url, tmp_path / "sharded", rattler.SourceConfig())
    requests_sharded = server.log.read_text()
    plain = install(url, tmp_path / "plain", rattler.SourceConfig(sharded_enabled=False))
    requests_plain = server.log.read_text()[len(requests_sharded) :]
    local = install((root / imported.name).as_uri(), tmp_path / "file", rattler.SourceConfig())

    for names in (sharded, plain, local):
        assert names == ["app", "lib"]
    assert "GET /open-tools/linux-64/repodata_shards.msgpack.zst" in requests_sharded
    assert "GET /open-tools/linux-64/shards/" in requests_sharded
    assert "repodata.json" not in requests_sharded
    assert "GET /open-tools/linux-64/repodata.json" in requests_plain
    assert "shards" not in requests_plain
    assert "GET /open-tools/linux-64/app-1.1-h1234_0.tar.bz2" in requests_sharded


def install(channel_url, folder, config):
    """Solve ``app`` from the channel alone and install it; return the installed names."""

    async def go():
        gateway = rattler.Gateway(cache_dir=folder / "cache", default_config=config)
        records = await rattler.solve(
            [channel_url], ["app"], gateway=gateway, platforms=["linux-64", "noarch"]
        )
        await rattler.install(records, folder / "env", cache_dir=folder / "pkgs")
        return records

    records = asyncio.run(go())
    assert {r.name.normalized for r in records} == {"app", "lib"}
    prefix = folder / "env" / "conda-meta"
    return sorted(orjson.loads(p.read_bytes())["name"] for p in prefix.glob("*.json"))
