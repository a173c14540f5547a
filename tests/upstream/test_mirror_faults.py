"""A mirror run killed in the middle: what it committed stays, what it held is let go
within seconds, and the next run (the scheduler's, with the default settings) goes on
from there."""

import time

import pytest

from packages_app import runner
from packages_app.models import MirrorRun, PackageFile, StagedFile
from packages_app.upstream import mirror

from ..packages import eventually
from .test_mirror import held, make_mirror

pytestmark = pytest.mark.django_db(transaction=True)
FILES = 12


def test_a_run_killed_midway_is_resumed_by_the_next_round(users, static_upstream, processes):
    for number in range(FILES):
        static_upstream.add(f"pkg{number:02d}", "1.0")
    static_upstream.index()
    static_upstream.server.down = True  # the run on creation fails at once
    channel = make_mirror(users["owner"], static_upstream.url, platforms=["noarch"])
    assert MirrorRun.objects.get(channel=channel).state == "failed"
    static_upstream.server.down = False
    static_upstream.server.delay = 0.3  # every file takes a while: the kill lands midway

    command = processes.start(
        "sync", ["manage.py", "sync_mirror", "mirror"],
        env={"WHARF_MIRROR_BATCH": "2", "WHARF_MIRROR_DOWNLOADS": "1"},
        ready=lambda: PackageFile.objects.filter(channel=channel).count() >= 4,
    )  # fmt: skip
    processes.kill(command)
    killed_at = time.monotonic()
    committed = PackageFile.objects.filter(channel=channel).count()
    assert 4 <= committed < FILES
    killed = MirrorRun.objects.filter(channel=channel).first()
    assert (killed.trigger, killed.state) == ("command", "running")

    static_upstream.server.delay = 0
    # The scheduler's next round: the killed run's lock went with its process.
    assert mirror.due_mirrors() == 1
    runner.wait_for_background_work()

    def resumed():
        assert MirrorRun.objects.filter(channel=channel, state="finished").exists()

    eventually(resumed)
    recovered = time.monotonic() - killed_at
    killed.refresh_from_db()
    assert killed.state == "interrupted" and killed.finished_at is not None
    assert "next run goes on" in killed.error
    last = MirrorRun.objects.filter(channel=channel).first()
    assert last.trigger == "schedule"
    assert last.added == FILES - committed  # nothing fetched twice once committed
    assert len(held(channel)) == FILES
    assert not StagedFile.objects.filter(channel=channel).exists()
    assert recovered < 20
