from django.core.management.base import BaseCommand

from packages_app.intake import cleanup


class Command(BaseCommand):
    help = (
        "Delete upload temporary files (wharf-upload-* in the upload temp folder) that were "
        "not written to for WHARF_UPLOAD_TEMP_MAX_AGE_SECONDS: what killed processes left."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--max-age", type=int, default=None, help="seconds (default: the setting)"
        )

    def handle(self, max_age=None, **options):
        removed = cleanup.remove_stale_uploads(max_age)
        self.stdout.write(f"Deleted {removed} upload temporary files from {cleanup.temp_dir()}.")
