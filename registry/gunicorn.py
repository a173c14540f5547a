"""gunicorn's part: one metrics folder for its workers, its log lines in Wharf's format.

``gunicorn.conf.py`` (read by gunicorn from the working directory) takes its hooks and
logger from here. Importing this module sets ``PROMETHEUS_MULTIPROC_DIR`` when the
environment does not — a fresh folder, removed when gunicorn exits — before any worker
imports prometheus_client, so that a scrape of any worker counts them all. A folder
given by the environment is emptied at start-up: it must belong to this server alone.
"""

import logging
import os
import shutil
import sys
import tempfile

from gunicorn.glogging import Logger

from registry import logs

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="wharf-metrics-")
    os.environ["WHARF_METRICS_DIR_IS_TEMPORARY"] = "1"

# Request headers and environ entries that carry credentials: never in an access log line.
_CREDENTIALS = ("authorization", "api-key", "api_key", "cookie")


class WharfLogger(Logger):
    """gunicorn's error and access logs on stdout, formatted and masked as Wharf's own."""

    def setup(self, cfg):
        super().setup(cfg)
        formatter = logs.formatter()
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter)
                if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr:
                    handler.setStream(sys.stdout)

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key, value in atoms.items():
            if not isinstance(value, str):
                continue
            if key.startswith("{") and any(word in key for word in _CREDENTIALS):
                atoms[key] = logs.MASK
            else:
                atoms[key] = logs.redact(value)
        return atoms


def on_starting(server):
    from registry import metrics

    metrics.clear_multiprocess_dir()


def post_worker_init(worker):
    """A web worker picks up what killed processes left (packages_app.runner.at_start)."""
    from packages_app import runner

    runner.starting()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if os.environ.get("WHARF_METRICS_DIR_IS_TEMPORARY"):
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
