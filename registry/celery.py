import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")

app = Celery("registry")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def schedule_periodic_tasks(sender, **kwargs):
    """Celery beat (``make beat``, one per deployment) sends the reconciler, which finds
    index work whose task was lost (packages_app/index/reconcile.py), and the cleanup of
    temporary files that killed uploads left behind (packages_app/intake/cleanup.py), and the
    flush of download counts buffered in Redis (packages_app/conda/statistics.py), and the
    mirror runs that are due (packages_app/upstream/mirror.py)."""
    from django.conf import settings

    for seconds, task, name in (
        (settings.WHARF_RECONCILE_SECONDS, "reconcile_indexes", "reconcile indexes"),
        (settings.WHARF_RECONCILE_SECONDS, "start_due_mirrors", "start due mirror runs"),
        (settings.WHARF_UPLOAD_CLEANUP_SECONDS, "clean_uploads", "clean upload files"),
        (settings.WHARF_STATS_FLUSH_SECONDS, "flush_download_counts", "flush download counts"),
    ):
        if seconds > 0:
            # A round that waited longer than the next one is pointless: it expires.
            sender.add_periodic_task(
                seconds, sender.signature(f"packages_app.tasks.{task}"), name=name, expires=seconds
            )


@signals.setup_logging.connect
def configure_logging(loglevel=None, **kwargs):
    """Workers and beat log through Wharf's LOGGING (WHARF_LOG_FORMAT), not Celery's
    own format; ``--loglevel`` still sets the level."""
    from django.conf import settings

    from registry import logs

    logs.configure(settings.LOGGING)
    if loglevel:
        import logging

        logging.getLogger().setLevel(loglevel)


@signals.celeryd_init.connect
def prepare_worker(instance, **kwargs):
    """Before the pool starts: no banner among JSON lines, and a clean metrics folder."""
    from django.conf import settings

    if settings.WHARF_LOG_FORMAT == "json":
        instance.quiet = True
    if settings.WHARF_WORKER_METRICS_PORT:
        from registry import metrics

        if not metrics.MULTIPROCESS_DIR:
            # The pool's processes would count where no scrape can see it.
            raise SystemExit(
                "WHARF_WORKER_METRICS_PORT is set but PROMETHEUS_MULTIPROC_DIR is not: give "
                "the worker an empty folder of its own there (e.g. /tmp/wharf-metrics)."
            )
        metrics.clear_multiprocess_dir()


@signals.worker_ready.connect
def pick_up_what_killed_processes_left(**kwargs):
    """Index work a killed worker held (its task messages come back only after Redis's
    visibility timeout, an hour), its temporary files and unrecorded objects: at once,
    instead of at beat's next round (packages_app.runner.at_start)."""
    from packages_app import runner

    runner.starting()


@signals.worker_ready.connect
def serve_worker_metrics(**kwargs):
    from django.conf import settings

    if settings.WHARF_WORKER_METRICS_PORT:
        from registry import metrics

        metrics.serve_worker_metrics(settings.WHARF_WORKER_METRICS_PORT)
