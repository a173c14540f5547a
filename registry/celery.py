import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")

app = Celery("registry")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def schedule_reconciler(sender, **kwargs):
    """Celery beat (``make beat``, one per deployment) sends the reconciler, which finds
    index work whose task was lost (packages_app/reconcile.py)."""
    from django.conf import settings

    seconds = settings.WHARF_RECONCILE_SECONDS
    if seconds > 0:
        # A round that waited longer than the next one is pointless: it expires.
        sender.add_periodic_task(
            seconds,
            sender.signature("packages_app.tasks.reconcile_indexes"),
            name="reconcile indexes",
            expires=seconds,
        )
