from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.authentication import Caller
from channels_app.models import Channel
from channels_app.tokens import rules


class Command(BaseCommand):
    help = "Create an API token for a user and print its secret (shown only this once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", required=True, help="What the token is for.")
        parser.add_argument(
            "--channel",
            action="append",
            default=[],
            dest="channels",
            help="Limit the token to this channel (repeatable; one where the user holds a role).",
        )
        parser.add_argument("--read-only", action="store_true", help="The token may only read.")
        parser.add_argument("--expires", type=int, metavar="DAYS", help="Expire after DAYS days.")

    def handle(self, username, name, channels, read_only, expires, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user '{username}'.")
        found = list(Channel.objects.filter(name__in=channels))
        missing = set(channels) - {c.name for c in found}
        if missing:
            raise CommandError(f"No channel {', '.join(sorted(missing))}.")
        if expires is not None and expires < 1:
            raise CommandError("--expires takes a number of days, 1 or more.")
        try:
            _token, secret = rules.create_token(
                Caller(user), name, read_only=read_only, channels=found, expires_in_days=expires,
                via="manage.py create_token",
            )  # fmt: skip
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(secret)
