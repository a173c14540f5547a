"""The background runner's threads: a process about to end finishes them first."""

import time

from packages_app import runner


def test_a_process_ending_runs_delayed_work_now_and_waits_for_what_it_starts():
    done = []

    def delayed():
        # Background work that starts more, as a rebuild schedules its .bz2.
        runner.in_background(done.append, "started by it", delay=600)
        time.sleep(0.2)
        done.append("delayed")

    runner.in_background(delayed, delay=600)
    started = time.monotonic()

    runner.finish_background_work()

    assert time.monotonic() - started < 30
    assert sorted(done) == ["delayed", "started by it"]
    assert not runner.background_threads
    # Later work keeps its delay again.
    runner.in_background(done.append, "later", delay=0.5)
    time.sleep(0.1)
    assert "later" not in done
    runner.wait_for_background_work()
    assert done[-1] == "later"
