from django.core.management.base import BaseCommand, CommandError

from channels_app.models import Channel
from packages_app.intake import exporting
from packages_app.management.progress import Progress


class Command(BaseCommand):
    help = (
        "Write a channel to a directory that any web server can serve as a conda channel: "
        "<subdir>/<package files>, repodata.json (.zst, .bz2), sharded repodata and "
        "channeldata.json, the same bytes Wharf serves; other labels than main in "
        "label/<label>/. Run it again to bring the copy up "
        "to date: files already there with the right content are not copied again."
    )

    def add_arguments(self, parser):
        parser.add_argument("channel", help="the channel to export")
        parser.add_argument("directory", help="where to write it (created if missing)")
        parser.add_argument(
            "--prune",
            action="store_true",
            help="delete package files and shards in the directory that the channel no longer has",
        )
        parser.add_argument(
            "--wait",
            type=int,
            default=60,
            metavar="SECONDS",
            help="how long to wait for an index a worker is rebuilding (default 60)",
        )

    def handle(self, channel, directory, **options):
        found = Channel.objects.filter(name=channel).first()
        if found is None:
            raise CommandError(f"Channel '{channel}' does not exist.")
        verbosity = options["verbosity"]
        if found.private and verbosity:
            self.stderr.write(
                f"Channel '{channel}' is private: the copy has no access control; serve it "
                "only where its members alone can read it."
            )
        progress = Progress(self.stdout, 0, unit="file", verbosity=verbosity)
        try:
            result = exporting.export_channel(
                found,
                directory,
                prune=options["prune"],
                wait=options["wait"],
                progress=lambda done, total: progress.update(done, total=total),
            )
        except exporting.ExportError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            progress.close()
        if verbosity:
            linked = f", {result.linked} linked to a copy in another label" if result.linked else ""
            self.stdout.write(
                f"Exported '{channel}' to {directory}: {result.written} files written "
                f"({result.written_bytes} bytes){linked}, {result.unchanged} already up to date."
            )
            if result.stale:
                self.stdout.write(
                    f"{len(result.stale)} files in {directory} are no longer in the channel; "
                    "--prune deletes them."
                )
        if result.problems:
            for path, problem in sorted(result.problems.items()):
                self.stderr.write(f"  {path}: {problem}")
            raise CommandError(f"{len(result.problems)} files could not be exported (above).")
