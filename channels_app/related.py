"""A channel's related channels: the ordered list of where its dependencies come from."""

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction

from .access import readable_channels
from .models import RelatedChannel

MAX_RELATED = 20
# The longest entry: a URL as long as the model keeps (a channel name is shorter still).
MAX_ENTRY_LENGTH = RelatedChannel._meta.get_field("url").max_length


def parse(channel, text, caller):
    """:func:`check` for ``text``, one channel name or URL per line (the settings page)."""
    return check(channel.name, text.splitlines(), caller)


def check(channel_name, entries, caller):
    """Entries (channel or None, url) for ``entries``, channel names or URLs in order
    (blank ones are skipped), of the channel named ``channel_name``.

    A name must be a channel the caller may read (others do not exist for them), not the
    channel itself; a URL must be http(s) and at most :data:`MAX_ENTRY_LENGTH` characters;
    none may be listed twice. Raises ValidationError naming every bad entry (or, for more
    than :data:`MAX_RELATED` entries, only that).
    """
    lines = [str(entry).strip() for entry in entries if str(entry).strip()]
    if len(lines) > MAX_RELATED:
        raise ValidationError(f"At most {MAX_RELATED} related channels.")
    names = {line for line in lines if "://" not in line and len(line) <= MAX_ENTRY_LENGTH}
    readable = {c.name: c for c in readable_channels(caller).filter(name__in=names)}
    found, problems, seen = [], [], set()
    for line in lines:
        try:
            if line in seen:
                raise ValidationError(f"'{line}' is listed twice.")
            seen.add(line)
            found.append(_entry(line, channel_name, readable))
        except ValidationError as exc:
            problems.extend(exc.messages)
    if problems:
        raise ValidationError(problems)
    return found


def _entry(line, channel_name, readable):
    """(channel or None, url) for one entry; ``readable``: the channels it may name."""
    if len(line) > MAX_ENTRY_LENGTH:
        # Checked first: such a line would be looked up, or stored, to fail later.
        raise ValidationError(
            f"'{line[:60]}…' has {len(line)} characters; a related channel's URL has at "
            f"most {MAX_ENTRY_LENGTH}."
        )
    if "://" in line:
        try:
            URLValidator(schemes=["http", "https"])(line)
        except ValidationError:
            raise ValidationError(f"'{line}' is not an http(s) channel URL.") from None
        return None, line.rstrip("/")
    if line == channel_name:
        raise ValidationError(f"'{line}' is this channel itself.")
    if line not in readable:
        raise ValidationError(
            f"No channel '{line}' here. For an external channel give its URL, "
            f"e.g. https://conda.anaconda.org/{line}"
        )
    return readable[line], ""


@transaction.atomic
def replace(channel, entries):
    """Make ``entries`` (from :func:`parse`) the channel's related channels, in order."""
    RelatedChannel.objects.filter(channel=channel).delete()
    RelatedChannel.objects.bulk_create(
        RelatedChannel(channel=channel, position=i, target=target, url=url)
        for i, (target, url) in enumerate(entries)
    )


def visible(channel, caller):
    """The channel's related channels the caller may see, in order.

    Wharf channels the caller may not read are left out: their existence is not theirs
    to know.
    """
    return visible_of([channel], caller)[channel.pk]


def visible_of(channels, caller):
    """{channel id: :func:`visible` of it} for many channels, in two queries."""
    entries = RelatedChannel.objects.filter(channel__in=channels).select_related("target")
    entries = list(entries.order_by("channel", "position"))
    targets = {e.target_id for e in entries if e.target_id}
    allowed = set(readable_channels(caller).filter(pk__in=targets).values_list("pk", flat=True))
    found = {channel.pk: [] for channel in channels}
    for entry in entries:
        if not entry.target_id or entry.target_id in allowed:
            found[entry.channel_id].append(entry)
    return found


def as_text(channel):
    return "\n".join(entry.label for entry in channel.related.select_related("target"))
