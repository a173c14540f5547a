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
    """Entries (channel or None, url) for ``text``: one channel name or URL per line.

    A name must be a channel the caller may read (others do not exist for them), not the
    channel itself; a URL must be http(s) and at most :data:`MAX_ENTRY_LENGTH` characters.
    Raises ValidationError naming the bad line.
    """
    entries, seen = [], set()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > MAX_RELATED:
        raise ValidationError(f"At most {MAX_RELATED} related channels.")
    for line in lines:
        if len(line) > MAX_ENTRY_LENGTH:
            # Checked first: such a line would be looked up, or stored, to fail later.
            raise ValidationError(
                f"'{line[:60]}…' has {len(line)} characters; a related channel's URL has at "
                f"most {MAX_ENTRY_LENGTH}."
            )
    readable = readable_channels(caller)
    for line in lines:
        if line in seen:
            raise ValidationError(f"'{line}' is listed twice.")
        seen.add(line)
        if "://" in line:
            try:
                URLValidator(schemes=["http", "https"])(line)
            except ValidationError:
                raise ValidationError(f"'{line}' is not an http(s) channel URL.") from None
            entries.append((None, line.rstrip("/")))
            continue
        if line == channel.name:
            raise ValidationError(f"'{line}' is this channel itself.")
        target = readable.filter(name=line).first()
        if target is None:
            raise ValidationError(
                f"No channel '{line}' here. For an external channel give its URL, "
                f"e.g. https://conda.anaconda.org/{line}"
            )
        entries.append((target, ""))
    return entries


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
    entries = list(channel.related.select_related("target"))
    targets = {e.target_id for e in entries if e.target_id}
    allowed = set(readable_channels(caller).filter(pk__in=targets).values_list("pk", flat=True))
    return [e for e in entries if not e.target_id or e.target_id in allowed]


def as_text(channel):
    return "\n".join(entry.label for entry in channel.related.select_related("target"))
