"""What killed processes leave behind is reclaimed in seconds: upload temporary files no
living process holds, stored objects no committed row records. An upload in progress
keeps its file however slow it is, and nothing else in the folder is ever touched."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command

from packages_app import runner
from packages_app.intake import cleanup, uploads

from ..conftest import ROOT
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
    """An abandoned upload file (no process holds it), and old things that are not upload
    files (or not ours)."""
    elsewhere = aged(tmp_path / "precious.conda", 10 * HOURS)
    link = temp_dir / "wharf-upload-link"
    link.symlink_to(elsewhere)
    folder = temp_dir / "wharf-upload-folder"
    folder.mkdir()
    return {
        "abandoned": aged(temp_dir / "wharf-upload-k1ll3d", 10),
        "unrelated": [
            aged(temp_dir / "someone-elses.tmp", 10 * HOURS),
            aged(temp_dir / "tmpwharf-upload-x", 10 * HOURS),
            aged(folder / "inside", 10 * HOURS),
            aged(folder, 10 * HOURS),
            aged(link, 10 * HOURS),
            elsewhere,
        ],
    }


def test_it_deletes_upload_files_no_process_holds_and_nothing_else(left_behind, temp_dir):
    # Created a moment ago: its writer may not have locked it yet.
    just_created = aged(temp_dir / "wharf-upload-just-now", 0)

    assert cleanup.remove_abandoned_files() == 1

    assert not left_behind["abandoned"].exists()
    assert just_created.exists()
    for path in left_behind["unrelated"]:
        assert path.exists() or path.is_symlink(), path
    assert (temp_dir / "wharf-upload-link").resolve().read_bytes() == b"partial package"
    assert cleanup.remove_abandoned_files() == 0


def test_an_upload_in_progress_keeps_its_file_however_long_it_takes(temp_dir):
    sink = uploads._Sink("slow-1.0-0.conda")  # what an upload writes its body to
    try:
        path = sink.path
        assert os.path.dirname(path) == str(temp_dir)
        sink.write(b"x" * 1024)
        aged(Path(path), 7 * HOURS)  # a client that sent nothing for hours

        assert cleanup.remove_abandoned_files() == 0
        assert os.path.exists(path)
        received = sink.finish()
        assert cleanup.remove_abandoned_files() == 0  # received, still being checked
        assert os.path.exists(path)
    finally:
        sink.file.close()
    received.discard()
    assert not os.path.exists(path)


HOLDER = """
import os, sys, time
sys.path.insert(0, {root!r})
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")
import django
django.setup()
from packages_app.intake import cleanup
handle = cleanup.hold({path!r})
print("holding", flush=True)
time.sleep(600)
"""


def test_a_file_whose_process_was_killed_is_deleted_at_once(temp_dir, tmp_path):
    path = aged(temp_dir / "wharf-upload-of-a-doomed-process", 60)
    script = tmp_path / "holder.py"
    script.write_text(HOLDER.format(root=str(ROOT), path=str(path)))
    holder = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "holding\n"
        assert cleanup.remove_abandoned_files() == 0  # its process is alive
        assert path.exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()

    assert cleanup.remove_abandoned_files() == 1
    assert not path.exists()


@pytest.mark.django_db
def test_the_clean_uploads_command(left_behind, temp_dir, capsys):
    call_command("clean_uploads")

    assert capsys.readouterr().out == (
        f"Deleted 1 upload temporary files from {temp_dir} and 0 stored objects that "
        "nothing recorded.\n"
    )
    assert not left_behind["abandoned"].exists()
    assert all(path.exists() or path.is_symlink() for path in left_behind["unrelated"])


@pytest.mark.django_db
def test_it_cleans_in_the_background_at_most_once_an_interval(left_behind, temp_dir, monkeypatch):
    monkeypatch.setattr(cleanup.now_and_then, "last_run", None)  # as in a process just started

    cleanup.now_and_then()  # what each upload calls
    runner.wait_for_background_work()
    assert not left_behind["abandoned"].exists()

    later = aged(temp_dir / "wharf-upload-later", 10)
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
    assert not left_behind["abandoned"].exists()

    later = aged(left_behind["abandoned"], 10)
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
    stale = aged(left_behind["abandoned"], 10)

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
    port = processes.redis().port
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "WHARF_UPLOAD_TEMP_DIR": str(temp_dir),
        "WHARF_UPLOAD_CLEANUP_SECONDS": "1",
    }
    processes.worker("worker", env)
    processes.beat(env)
    later = aged(temp_dir / "wharf-upload-after-the-worker-started", 10)

    def removed():
        assert not later.exists()

    eventually(removed, timeout=30)
    assert not left_behind["abandoned"].exists()
    for path in left_behind["unrelated"]:
        assert path.exists() or path.is_symlink(), path
