from django.core.management.base import BaseCommand

from packages_app.intake import cleanup


class Command(BaseCommand):
    help = (
        "Delete what killed processes left behind: upload temporary files (wharf-upload-* in "
        "the upload temp folder) that no process holds, and stored objects of uploads and "
        "imports that never committed."
    )

    def handle(self, **options):
        files, objects = cleanup.reclaim()
        self.stdout.write(
            f"Deleted {files} upload temporary files from {cleanup.temp_dir()} and {objects} "
            "stored objects that nothing recorded."
        )
