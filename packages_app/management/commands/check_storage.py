from django.core.management.base import BaseCommand, CommandError

from channels_app.models import Channel
from packages_app import runner
from packages_app.index.storage_check import check_storage


class Command(BaseCommand):
    help = (
        "Compare package records with the stored files: report files that are missing and "
        "objects no record refers to (orphans), and rebuild every index whose published "
        "files are missing. Fails (exit status 1) while a recorded file is missing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--channel", help="check only this channel")
        parser.add_argument(
            "--delete-orphans", action="store_true", help="delete the orphans it finds"
        )
        parser.add_argument(
            "--orphan-grace",
            type=int,
            default=3600,
            help="seconds an unreferenced object may belong to an upload in progress "
            "(default 3600)",
        )

    def handle(self, *, channel, delete_orphans, orphan_grace, **options):
        target = None
        if channel:
            target = Channel.objects.filter(name=channel).first()
            if target is None:
                raise CommandError(f"No channel named '{channel}'.")
        report = check_storage(
            channel=target, delete_orphans=delete_orphans, orphan_grace=orphan_grace
        )
        runner.finish_background_work()
        for line in report.missing:
            self.stdout.write(f"missing: {line}")
        for path in report.orphans:
            self.stdout.write(f"orphan: {path}")
        for where in report.stale_indexes:
            self.stdout.write(f"index rebuilt: {where}")
        self.stdout.write(
            f"{report.files_checked} package files checked, {len(report.missing)} missing, "
            f"{len(report.orphans)} orphans ({report.orphans_deleted} deleted), "
            f"{len(report.stale_indexes)} indexes rebuilt."
        )
        if report.missing:
            raise CommandError(
                f"{len(report.missing)} recorded package files are missing from storage: "
                "restore them from a backup, or delete their records."
            )
