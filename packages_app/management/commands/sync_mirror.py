from django.core.management.base import BaseCommand, CommandError

from channels_app.models import Channel, Kind
from packages_app import runner
from packages_app.management.progress import Progress
from packages_app.models import MirrorRun
from packages_app.upstream import mirror


class Command(BaseCommand):
    help = (
        "Run a mirror channel's copy of its upstream now: read the upstream's index of "
        "every mirrored subdir, copy the files the channel's filters select that it does "
        "not hold yet (and delete those the upstream no longer has, if the channel says "
        "so). Safe to interrupt and run again: the next run goes on from there."
    )

    def add_arguments(self, parser):
        parser.add_argument("channel", help="the mirror channel's name")
        parser.add_argument(
            "--full",
            action="store_true",
            help="read every subdir's upstream index, also those that did not change since "
            "the last complete copy (e.g. to copy again files deleted here)",
        )

    def handle(self, channel, **options):
        found = Channel.objects.select_related("upstream").filter(name=channel).first()
        if found is None:
            raise CommandError(f"No channel '{channel}'.")
        if found.kind != Kind.MIRROR:
            raise CommandError(f"Channel '{channel}' is a {found.kind} channel, not a mirror.")
        verbosity = options["verbosity"]
        if verbosity:
            self.stdout.write(f"Mirroring {found.upstream.url} into '{found.name}'.")
        with Progress(self.stdout, 0, unit="file", verbosity=verbosity) as progress:

            def report(run):
                progress.update(
                    run.added + run.failed,
                    f"{run.added} copied, {run.failed} failed, {run.removed} removed",
                    total=run.to_copy,
                )

            try:
                run = mirror.sync(
                    found, trigger=MirrorRun.Trigger.COMMAND, progress=report, full=options["full"]
                )
            except mirror.MirrorBusy as exc:
                raise CommandError(f"{exc.message} Wait for it to finish.") from exc
        runner.finish_background_work()
        self._summary(run, verbosity)
        if run.state != MirrorRun.State.FINISHED:
            raise CommandError(
                f"Run {run.pk} {run.state}: {run.failed} files or subdirs not copied "
                "(listed above); run the command again to retry them."
            )

    def _summary(self, run, verbosity):
        if not verbosity:
            return
        subdirs = ", ".join(run.subdirs) or "none"
        unchanged = f" (unchanged upstream: {', '.join(run.unchanged)})" if run.unchanged else ""
        self.stdout.write(
            f"Run {run.pk}: subdirs {subdirs}{unchanged}; {run.selected} files selected upstream, "
            f"{run.added} copied ({run.added_bytes} bytes), {run.removed} removed, "
            f"{run.failed} failed."
        )
        for what, reason in run.failures.items():
            self.stdout.write(f"  {what}: {reason}")
