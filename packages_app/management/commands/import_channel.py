import os
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import F

from accounts import audit
from accounts.authentication import Caller
from channels_app.access import AccessError, Action, check
from channels_app.lifecycle import create_channel
from channels_app.models import Channel
from packages_app import runner
from packages_app.intake import archives, importing, uploads
from packages_app.management.progress import Progress
from packages_app.models import SubdirIndex


class Command(BaseCommand):
    help = (
        "Import a channel directory (<subdir>/<package files>, as conda-index or "
        "rattler-index write it, or a mirror; label/<label>/<subdir>/ for other labels than "
        "main, as export_channel writes them) into a channel. Every file is checked as an "
        "upload is; files already in the channel are skipped; the index is rebuilt once at "
        "the end. Safe to interrupt and run again."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory", help="the channel directory")
        parser.add_argument("--channel", required=True, help="the channel to import into")
        parser.add_argument(
            "--create", action="store_true", help="create the channel if it does not exist"
        )
        parser.add_argument("--private", action="store_true", help="create it private")
        parser.add_argument("--description", default="", help="description of a new channel")
        parser.add_argument(
            "--owner",
            metavar="USERNAME",
            help="owner of a new channel; recorded as the uploader of the files (must be "
            "allowed to upload to an existing channel)",
        )
        parser.add_argument(
            "--subdir",
            action="append",
            dest="subdirs",
            metavar="SUBDIR",
            help="import only this subdir (repeatable)",
        )
        parser.add_argument("--batch-size", type=int, default=500, help="files per transaction")
        parser.add_argument("--workers", type=int, default=None, help="inspecting processes")

    def handle(self, directory, **options):
        root = Path(directory)
        if not root.is_dir():
            raise CommandError(f"'{directory}' is not a directory.")
        subdirs = options["subdirs"]
        unknown = sorted(set(subdirs or ()) - archives.SUBDIRS)
        if unknown:
            raise CommandError(f"Unknown subdir {', '.join(unknown)}.")
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        owner = self._user(options["owner"])
        channel = self._channel(options, owner)
        found = importing.read_channel_directory(root, subdirs)
        files, misplaced = found.files, found.misplaced
        if not files and not misplaced:
            raise CommandError(
                f"No package files in '{directory}': a channel directory holds "
                "<subdir>/<name>-<version>-<build>.conda or .tar.bz2."
            )
        verbosity = options["verbosity"]
        if verbosity:
            self.stdout.write(f"Importing {len(files)} package files into '{channel.name}'.")
        with Progress(self.stdout, len(files), unit="file", verbosity=verbosity) as progress:

            def report(checked, result):
                progress.update(
                    checked,
                    f"{result.imported} imported, {result.skipped} skipped, "
                    f"{len(result.refused)} refused",
                )

            try:
                result = importing.import_files(
                    channel,
                    files,
                    owner,
                    batch_size=options["batch_size"],
                    workers=options["workers"],
                    progress=report,
                    source=str(root.resolve()),
                    refused=misplaced,
                    yanked=found.yanked,
                    file_labels=found.labels,
                )
            except importing.ImportBusy as exc:
                raise CommandError(f"{exc} Wait for it to finish.") from exc
            except uploads.UploadError as exc:
                raise CommandError(
                    f"{exc.message} What was imported stays; run the command again to go on."
                ) from exc
        # Embedded mode: work the rebuilds started in threads (the reconciler, a .bz2) must
        # not die with this process, an index's lease held.
        runner.finish_background_work()
        refused = {os.path.relpath(path, root): why for path, why in result.refused.items()}
        self._summary(channel, result, refused, verbosity)
        if refused:
            raise CommandError(
                f"{len(refused)} of {len(files) + len(misplaced)} files were refused "
                "(listed above); the others were imported."
            )

    def _user(self, username):
        if not username:
            return None
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user '{username}'.")
        return user

    def _channel(self, options, owner):
        name = options["channel"]
        channel = Channel.objects.filter(name=name).first()
        if channel is None:
            if not options["create"]:
                raise CommandError(
                    f"Channel '{name}' does not exist; add --create --owner USERNAME "
                    "(and --private) to create it."
                )
            if owner is None:
                raise CommandError("--create needs --owner USERNAME: every channel has an owner.")
            try:
                with transaction.atomic():
                    channel = create_channel(
                        owner,
                        name,
                        description=options["description"],
                        private=options["private"],
                    )
                    audit.record(
                        "channel.created",
                        actor=owner,
                        channel=channel,
                        private=channel.private,
                        via="import_channel",
                    )
            except ValidationError as exc:
                messages = "; ".join(
                    m if field == NON_FIELD_ERRORS else f"{field}: {m}"
                    for field, ms in exc.message_dict.items()
                    for m in ms
                )
                raise CommandError(f"Channel '{name}' cannot be created: {messages}") from exc
            if options["verbosity"]:
                self.stdout.write(
                    f"Created {'private' if channel.private else 'public'} channel '{name}'."
                )
            return channel
        if options["private"] and not channel.private:
            raise CommandError(
                f"Channel '{name}' exists and is public; --private does not change that. "
                "Make it private first (channel settings) or leave out --private."
            )
        if owner is not None:
            try:
                check(Caller(owner), channel, name, Action.UPLOAD)
            except AccessError as exc:
                raise CommandError(f"{owner.username}: {exc.message}") from exc
        return channel

    def _summary(self, channel, result, refused, verbosity):
        if refused:
            self.stderr.write(f"Refused {len(refused)} files:")
            for path, reason in sorted(refused.items()):
                self.stderr.write(f"  {path}: {reason}")
        if not verbosity:
            return
        if result.cleared:
            self.stdout.write(
                f"Deleted {result.cleared} stored files an interrupted import had left."
            )
        self.stdout.write(
            f"Imported {result.imported} files ({result.imported_bytes} bytes) into "
            f"'{channel.name}'; {result.skipped} were there already, {len(refused)} refused."
        )
        behind = SubdirIndex.objects.filter(
            channel=channel, built_revision__lt=F("requested_revision")
        ).values_list("subdir", flat=True)
        if behind:
            self.stdout.write(
                f"Index rebuilds are queued for {', '.join(sorted(behind))}; clients see the "
                "files once a worker has published them."
            )
        else:
            self.stdout.write("The index is published.")
