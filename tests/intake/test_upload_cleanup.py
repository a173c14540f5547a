"""Upload temporary files left by killed processes are deleted once old; an upload in
progress keeps its file, and nothing else in the folder is ever touched."""

import os
import time

import pytest
from django.core.management import call_command

from packages_app import runner
from packages_app.intake import cleanup, uploads

from ..packages import eventually, sha256_of, upload

HOURS = 3600


@pytest.fixture
def temp_dir(settings, tmp_path):
    folder = tmp_path / "upload-temp"
    folder.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(folder)
    return folder


def aged(path, seconds, content=b"partial package"):
    if not path.exists() and not path.is_symlink():
        path.write_bytes(content)
    when = time.time() - seconds
    os.utime(path, (when, when), follow_symlinks=False)
    return path


@pytest.fixture
def left_behind(temp_dir, tmp_path):
    """A stale upload file, and old things that are not upload files (or not ours)."""
    elsewhere = aged(tmp_path / "precious.conda", 10 * HOURS)
    link = temp_dir / "wharf-upload-link"
    link.symlink_to(elsewhere)
    folder = temp_dir / "wharf-upload-folder"
    folder.mkdir()
    return {
        "stale": aged(temp_dir / "wharf-upload-k1ll3d", 7 * HOURS),
        "unrelated": [
            aged(temp_dir / "someone-elses.tmp", 10 * HOURS),
            aged(temp_dir / "tmpwharf-upload-x", 10 * HOURS),
            aged(folder / "inside", 10 * HOURS),
            aged(folder, 10 * HOURS),
            aged(link, 10 * HOURS),
            elsewhere,
        ],
    }


def test_it_deletes_stale_upload_files_and_nothing_else(left_behind, temp_dir):
    fresh = aged(temp_dir / "wharf-upload-recent", 60)

    assert cleanup.remove_stale_uploads() == 1  # WHARF_UPLOAD_TEMP_MAX_AGE_SECONDS: 6 h

    assert not left_behind["stale"].exists()
    assert fresh.exists()
    for path in left_behind["unrelated"]:
        assert path.exists() or path.is_symlink(), path
    assert (temp_dir / "wharf-upload-link").resolve().read_bytes() == b"partial package"
    assert cleanup.remove_stale_uploads() == 0


def test_an_upload_in_progress_keeps_its_file(temp_dir):
    sink = uploads._Sink("slow-1.0-0.conda")  # what an upload writes its body to
    try:
        path = sink.path
        assert os.path.dirname(path) == str(temp_dir)
        for _ in range(4):  # a slow client: a chunk now and then, for longer than max age
            sink.write(b"x" * 1024)
            sink.file.flush()
            time.sleep(0.5)
            assert cleanup.remove_stale_uploads(max_age=1) == 0
        assert os.path.exists(path)
    finally:
        sink.abort()


def test_nothing_is_deleted_when_the_max_age_is_zero(left_behind, settings):
    settings.WHARF_UPLOAD_TEMP_MAX_AGE_SECONDS = 0
    assert cleanup.remove_stale_uploads() == 0
    assert left_behind["stale"].exists()


def test_the_clean_uploads_command_takes_a_max_age(left_behind, temp_dir, capsys):
    recent = aged(temp_dir / "wharf-upload-an-hour-ago", 1 * HOURS)

    call_command("clean_uploads", "--max-age", str(2 * HOURS))

    assert capsys.readouterr().out == f"Deleted 1 upload temporary files from {temp_dir}.\n"
    assert not left_behind["stale"].exists()
    assert recent.exists()
    call_command("clean_uploads", "--max-age", str(HOURS // 2))
    assert not recent.exists()
    assert all(path.exists() or path.is_symlink() for path in left_behind["unrelated"])


def test_it_cleans_in_the_background_at_most_once_an_interval(left_behind, temp_dir, monkeypatch):
    monkeypatch.setattr(cleanup.now_and_then, "last_run", None)  # as in a process just started

    cleanup.now_and_then()  # what each upload calls
    runner.wait_for_background_work()
    assert not left_behind["stale"].exists()

    later = aged(temp_dir / "wharf-upload-later", 7 * HOURS)
    cleanup.now_and_then()  # within WHARF_UPLOAD_CLEANUP_SECONDS of the last: nothing
    runner.wait_for_background_work()
    assert later.exists()


@pytest.mark.django_db(transaction=True)
def test_an_upload_cleans_up_now_and_then_in_any_mode(
    left_behind, client_for, public_channel, packages, monkeypatch
):
    # Web processes clean their own folder: in containers, workers cannot see it.
    monkeypatch.setattr(cleanup.now_and_then, "last_run", None)

    response = upload(client_for("owner"), public_channel.name, packages.make("tidy"))
    assert response.status_code == 201
    runner.wait_for_background_work()
    assert not left_behind["stale"].exists()

    later = aged(left_behind["stale"], 7 * HOURS)
    response = upload(client_for("owner"), public_channel.name, packages.make("tidy", "2.0"))
    assert response.status_code == 201
    runner.wait_for_background_work()
    assert later.exists()  # within WHARF_UPLOAD_CLEANUP_SECONDS of the last pass


@pytest.mark.django_db(transaction=True)
def test_an_upload_refused_on_the_quetz_route_cleans_up_too(
    left_behind, client_for, public_channel, packages, monkeypatch
):
    path = packages.make("tidy")
    stored = sha256_of(path)
    assert upload(client_for("owner"), public_channel.name, path).status_code == 201
    runner.wait_for_background_work()
    monkeypatch.setattr(cleanup.now_and_then, "last_run", None)
    stale = aged(left_behind["stale"], 7 * HOURS)

    other = packages.make("tidy", summary="other bytes under the same name")
    assert other.name == path.name and sha256_of(other) != stored
    response = client_for("owner").generic(
        "POST",
        f"/api/channels/{public_channel.name}/upload/{other.name}?sha256={sha256_of(other)}",
        other.read_bytes(),
        content_type="application/octet-stream",
    )

    assert response.status_code == 409, response.content  # other bytes, without force
    runner.wait_for_background_work()
    assert not stale.exists()


@pytest.mark.django_db(transaction=True)
def test_celery_beat_sends_the_cleanup(processes, left_behind, temp_dir):
    fresh = aged(temp_dir / "wharf-upload-recent", 60)
    port = processes.redis().port
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "WHARF_UPLOAD_TEMP_DIR": str(temp_dir),
        "WHARF_UPLOAD_CLEANUP_SECONDS": "1",
    }
    processes.worker("worker", env)
    processes.beat(env)

    def removed():
        assert not left_behind["stale"].exists()

    eventually(removed, timeout=30)
    assert fresh.exists()
    for path in left_behind["unrelated"]:
        assert path.exists() or path.is_symlink(), path
