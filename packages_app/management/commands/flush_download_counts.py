from django.core.management.base import BaseCommand

from packages_app.conda import statistics


class Command(BaseCommand):
    help = (
        "Move the download counts buffered in Redis into the database now (Celery beat does "
        "it every WHARF_STATS_FLUSH_SECONDS); embedded mode counts in the database directly."
    )

    def handle(self, **options):
        moved = statistics.flush()
        self.stdout.write(f"Moved {moved} downloads into the database.")
