"""A PostgreSQL cluster of a test's own, which it may stop and start: the shared test
database is never restarted."""

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path


class PrivatePostgres:
    """A PostgreSQL cluster in a temporary folder on a free port, run as the postgres user
    when the tests run as root (initdb refuses root)."""

    def __init__(self, port):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb")]
        self.bin = Path(found[-1]).parent
        self.folder = Path(tempfile.mkdtemp(prefix="wharf-pg-"))
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            shutil.chown(self.folder, self.user)
        self.port = port
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/wharf"
        self.pg("initdb", "-D", "data", "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        self.start()
        self.pg("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "wharf")

    def pg(self, tool, *args):
        subprocess.run([self.bin / tool, *args], cwd=self.folder, user=self.user, check=True,
                       capture_output=True)  # fmt: skip

    def start(self):
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.pg("pg_ctl", "-D", "data", "-l", "log", "-w", "-o", options, "start")

    def stop(self):
        self.pg("pg_ctl", "-D", "data", "-m", "fast", "-w", "stop")

    def remove(self):
        subprocess.run([self.bin / "pg_ctl", "-D", "data", "-m", "immediate", "stop"],
                       cwd=self.folder, user=self.user, capture_output=True)  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)
