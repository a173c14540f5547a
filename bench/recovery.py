"""Recovery: how long after a crash every accepted upload is served again.

    python -m bench.recovery [--case restart|survivor ...] [--wharf-root CHECKOUT[=LABEL] ...]

Services mode with the default settings (lease, reconciler, cleanup): gunicorn 2x4,
Celery beat and one Celery worker (concurrency 2), or two in the ``survivor`` case, on a
benchmark database of their own. 16 clients upload new package files to one subdir for
30 s while 8 clients read its repodata.json.zst. 10 s in, the whole worker (main process
and pool) is killed with SIGKILL:

- ``restart``: the worker is started again 5 s after the kill;
- ``survivor``: a second worker was running all along and nothing is restarted.

The clock runs until a GET of repodata.json shows every upload answered 201. The times
reported are from the kill, from the restart (``restart``) and from the last upload.
``--wharf-root`` runs the processes from another checkout (the code before a change);
the clients are this one's. Given several times, the checkouts take turns in each case.
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import redis

from . import common, servers

DATABASE = "postgres://postgres@127.0.0.1:5432/wharf_bench_recovery"
REDIS = "redis://127.0.0.1:6379/8"
SUBDIR = "linux-64"
UPLOADERS, READERS = 16, 8
LOAD_SECONDS, KILL_AT, RESTART_AFTER = 30, 10, 5
GIVE_UP_SECONDS = 900


def _env():
    env = common.bench_env(WHARF_BENCH_DATABASE_URL=DATABASE, REDIS_URL=REDIS)
    env["DATABASE_URL"] = DATABASE
    env["WHARF_DATA_DIR"] = str(common.BENCH_DIR / "data" / "recovery")
    # The defaults are what is measured.
    for name in list(env):
        if name.startswith("WHARF_") and name.endswith(("_LEASE_SECONDS", "RECONCILE_SECONDS")):
            del env[name]
    return env


def _start(argv, log, env, root):
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, *argv], cwd=root, env=env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def _worker(name, logs, env, root):
    argv = ["-m", "celery", "-A", "registry", "worker", "-n", f"{name}@%h", "--concurrency",
            "2", "--loglevel", "INFO", "--without-gossip", "--without-mingle"]  # fmt: skip
    log = logs / f"{name}.log"
    process = _start(argv, log, env, root)
    deadline = time.monotonic() + 60
    while " ready." not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker {name} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    return process


def _kill_group(process):
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _stop(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            _kill_group(process)


def _prepare(env, root):
    """A fresh database and data folder, migrated by the measured checkout; the token."""
    name = DATABASE.rsplit("/", 1)[1]
    admin = DATABASE.rsplit("/", 1)[0] + "/postgres"
    for statement in (
        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
        f'CREATE DATABASE "{name}"',
    ):
        subprocess.run(["psql", admin, "-q", "-c", statement], check=True)
    subprocess.run(["rm", "-rf", env["WHARF_DATA_DIR"]], check=True)
    redis.Redis.from_url(REDIS).flushdb()
    run = {"cwd": root, "env": env, "check": True, "capture_output": True, "text": True}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], **run)
    script = (
        "from accounts.models import ApiToken, User\n"
        "from channels_app.lifecycle import create_channel\n"
        "user = User.objects.create_user('bench', 'bench@example.org', 'x')\n"
        "create_channel(user, 'recovery', private=False)\n"
        "print(ApiToken.create_for(user, 'bench')[1])\n"
    )
    output = subprocess.run([sys.executable, "manage.py", "shell", "-c", script], **run)
    return output.stdout.strip().splitlines()[-1]


def _served(base, token):
    data = servers.get(base, f"recovery/{SUBDIR}/repodata.json", token)
    index = json.loads(data)
    return set(index.get("packages", {})) | set(index.get("packages.conda", {}))


def _load(base, token, files, stop_at, accepted, errors):
    queue = list(files)
    lock = threading.Lock()

    def uploader():
        while time.monotonic() < stop_at:
            with lock:
                if not queue:
                    return
                path = queue.pop()
            status = servers.upload(base, "recovery", token, path)
            with lock:
                if status == 201:
                    accepted[path.name] = time.monotonic()
                elif status >= 500:
                    errors.append(status)

    def reader():
        while time.monotonic() < stop_at:
            try:
                servers.get(base, f"recovery/{SUBDIR}/repodata.json.zst", token)
            except urllib.error.HTTPError as exc:
                if exc.code >= 500:
                    errors.append(exc.code)
            time.sleep(random.random() / 10)

    threads = [threading.Thread(target=uploader) for _ in range(UPLOADERS)]
    threads += [threading.Thread(target=reader) for _ in range(READERS)]
    for thread in threads:
        thread.start()
    return threads


def _when_the_doomed_worker_holds_a_lease(log, timeout=15):
    """Wait until the subdir's index lease is held by a task the doomed worker received
    (its log names the task ids it received), so that every run kills a lease holder;
    return whether it was seen before ``timeout``."""
    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(DATABASE.replace("postgres://", "postgresql://")) as db:
        while time.monotonic() < deadline:
            row = db.execute(
                "SELECT lease_owner FROM packages_app_subdirindex WHERE subdir = %s"
                " AND lease_until > now()",
                [SUBDIR],
            ).fetchone()
            if row and row[0] and f"[{row[0]}] received" in log.read_text():
                return True
            time.sleep(0.005)
    return False


def measure(case, root=common.ROOT):
    env = _env()
    logs = common.BENCH_DIR / "logs" / f"recovery-{case}"
    logs.mkdir(parents=True, exist_ok=True)
    token = _prepare(env, root)
    files = common.packages(4000, SUBDIR)
    port = servers.free_port()
    web = _start(
        ["-m", "gunicorn", "registry.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2",
         "--threads", "4", "--timeout", "120", "--log-level", "warning"],
        logs / "gunicorn.log", env, root,
    )  # fmt: skip
    beat = _start(
        ["-m", "celery", "-A", "registry", "beat", "--loglevel", "INFO", "--schedule",
         str(logs / "beat-schedule")],
        logs / "beat.log", env, root,
    )  # fmt: skip
    doomed = _worker("doomed", logs, env, root)
    others = [_worker("survivor", logs, env, root)] if case == "survivor" else []
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while not servers._listening(port):
        if time.monotonic() > deadline:
            raise RuntimeError((logs / "gunicorn.log").read_text()[-3000:])
        time.sleep(0.1)
    accepted, errors = {}, []
    started = time.monotonic()
    threads = _load(base, token, files, started + LOAD_SECONDS, accepted, errors)
    try:
        time.sleep(KILL_AT)
        held = _when_the_doomed_worker_holds_a_lease(logs / "doomed.log")
        killed = time.monotonic()
        _kill_group(doomed)
        restarted = None
        if case == "restart":
            time.sleep(RESTART_AFTER)
            others.append(_worker("restarted", logs, env, root))
            restarted = time.monotonic()
        for thread in threads:
            thread.join()
        last_upload = max(accepted.values())
        while True:
            missing = set(accepted) - _served(base, token)
            now = time.monotonic()
            if not missing or now - killed > GIVE_UP_SECONDS:
                break
            time.sleep(0.25)
    finally:
        for process in [*others, beat, web]:
            _stop(process)
    return {
        "case": case,
        "killed_a_lease_holder": held,
        "accepted": len(accepted),
        "errors": len(errors),
        "missing": len(missing),
        "from_kill": now - killed,
        "from_restart": None if restarted is None else now - restarted,
        "from_last_upload": max(0.0, now - last_upload),
    }


def run(report, cases=("restart", "survivor"), roots=((common.ROOT, "this checkout"),)):
    rows = []
    for case in cases:
        for root, label in roots:
            result = measure(case, root)
            print(json.dumps({"code": label, **result}), flush=True)
            rows.append(_row(result, label))
    report.table(
        "Recovery after SIGKILL of a whole Celery worker",
        [
            "code",
            "case",
            "lease holder killed",
            "uploads 201",
            "5xx",
            "never served",
            "kill → all served",
            "restart → all served",
            "last upload → all served",
        ],
        rows,
        note=(
            f"Services mode, default settings; {UPLOADERS} uploaders (one subdir) and "
            f"{READERS} readers for {LOAD_SECONDS} s; the worker (main and pool) is killed "
            f"{KILL_AT} s in, at the first moment after that when it holds the subdir's "
            f"index lease (a rebuild runs). restart: started again {RESTART_AFTER} s later; "
            "survivor: a second worker runs throughout. Until a GET of repodata.json shows "
            f"every upload answered 201 (given up after {GIVE_UP_SECONDS} s)."
        ),
    )


def _row(result, label):
    def shown(value):
        return "-" if value is None else common.seconds(value)

    return [label, result["case"], "yes" if result["killed_a_lease_holder"] else "no",
            result["accepted"], result["errors"],
            result["missing"], shown(result["from_kill"]), shown(result["from_restart"]),
            shown(result["from_last_upload"])]  # fmt: skip


def _label(root):
    """The checkout's commit, and "+ changes" when its files differ from it."""
    git = {"cwd": root, "capture_output": True, "text": True}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], **git).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], **git).stdout
    return f"{commit} + changes" if dirty.strip() else commit


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", action="append", choices=["restart", "survivor"])
    parser.add_argument(
        "--wharf-root", action="append", metavar="CHECKOUT[=LABEL]",
        help="run Wharf from this checkout (repeatable; default this one)",
    )  # fmt: skip
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    roots = [(common.ROOT, _label(common.ROOT))]
    if args.wharf_root:
        roots = []
        for given in args.wharf_root:
            path, _, label = given.partition("=")
            roots.append((Path(path).resolve(), label or _label(Path(path))))
    report = common.Report("Recovery")
    run(report, args.case or ("restart", "survivor"), roots)
    if not args.no_write:
        report.write()


if __name__ == "__main__":
    main()
