from django.core.management.base import BaseCommand

from packages_app import runner
from packages_app.index import reconcile


class Command(BaseCommand):
    help = (
        "Send a rebuild for every channel subdir whose index is behind its package files "
        "(and a .bz2 refresh where one was lost). With Celery the workers do the work; in "
        "embedded mode it is done here, before the command returns."
    )

    def handle(self, **options):
        rebuilds, refreshes = reconcile.reconcile()
        runner.finish_background_work()  # embedded mode: a delayed .bz2 runs now
        self.stdout.write(f"Sent {rebuilds} index rebuilds and {refreshes} .bz2 refreshes.")
