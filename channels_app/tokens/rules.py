"""Who may create an API token, and which channels it may be limited to.

:func:`create_token` is the one way a user's token is made: the API keys page, the
REST API (``POST /api/v1/tokens/``) and ``manage.py create_token`` all call it, so they
accept and refuse the same channels.
"""

from django.core.exceptions import PermissionDenied, ValidationError

from accounts import audit
from accounts.models import ApiToken
from channels_app.access import has_role
from channels_app.models import Channel

READ_ONLY_REFUSED = "A read-only token cannot create tokens."
WIDENING_REFUSED = "A token limited to some channels cannot widen access."


def limitable_channels(caller):
    """The channels a token made by ``caller`` may be limited to, as a queryset.

    The rule: the channels where the caller's user holds a role — by direct membership,
    a team or their organisation; a site superuser, who acts as owner everywhere, every
    channel. A token is scoped to the user's own channels, as package hosts scope keys:
    a public channel of others is not among them (anyone reads it without a token, and a
    token could do nothing more there), a private one they may not read even less. A
    caller acting with a token that is itself limited to channels may limit a new one
    only to some of those.
    """
    user = caller.user
    if not user.is_authenticated:
        return Channel.objects.none()
    channels = Channel.objects.all()
    if not user.is_superuser:
        channels = channels.filter(has_role(user))
    if caller.token is not None and caller.token.limited:
        channels = channels.filter(pk__in=caller.token.channel_ids)
    return channels


def check_name(name):
    """Refuse (ValidationError on ``name``) a token name that is empty or longer than the
    model allows. The page and the REST API check it in their forms too; this is for
    ``manage.py create_token``, which has none, and where the database would refuse it
    with an error that says nothing (PostgreSQL) or not at all (SQLite)."""
    limit = ApiToken._meta.get_field("name").max_length
    if not isinstance(name, str) or not name.strip():
        raise ValidationError({"name": ["Give the token a name that says what it is for."]})
    if len(name) > limit:
        raise ValidationError(
            {"name": [f"A token name has at most {limit} characters; this one has {len(name)}."]}
        )


def check_creator(caller):
    """Refuse (PermissionDenied) a caller who may create no token at all: one acting with
    a read-only token."""
    if caller.token is not None and caller.token.read_only:
        raise PermissionDenied(READ_ONLY_REFUSED)


def _widens(token, channels):
    """Whether a token limited to ``channels`` (none: unlimited) would reach further than
    ``token``, the one the caller acts with (None: a session)."""
    if token is None or not token.limited:
        return False
    return not channels or any(channel.pk not in token.channel_ids for channel in channels)


def create_token(
    caller, name, *, read_only=False, channels=(), expires_in_days=None, request=None,
    **audit_details,
):  # fmt: skip
    """Create a token for the caller's user, limited to ``channels`` when some are given;
    record it in the audit log (with ``request``, or ``audit_details``); return
    ``(token, secret)``.

    Refused, before anything is written:
    - PermissionDenied when the caller acts with a read-only token, or with a token
      limited to channels and the new one would reach further (no limit, or channels
      outside its own): a narrowed token cannot widen access;
    - ValidationError on ``name`` for a name :func:`check_name` refuses;
    - ValidationError on ``channels`` for a channel outside :func:`limitable_channels`.
      A private one the caller may not read is "not found", worded exactly as for a
      channel that does not exist, so that its existence is never confirmed.
    """
    check_creator(caller)
    check_name(name)
    channels = list(channels)
    allowed = set(
        limitable_channels(caller)
        .filter(pk__in=[channel.pk for channel in channels])
        .values_list("pk", flat=True)
    )
    outside = [channel for channel in channels if channel.pk not in allowed]
    for channel in outside:
        if channel.private:
            raise ValidationError({"channels": [f"Channel '{channel.name}' not found."]})
    if _widens(caller.token, channels):
        raise PermissionDenied(WIDENING_REFUSED)
    if outside:
        raise ValidationError(
            {
                "channels": [
                    f"You hold no role in channel '{channel.name}'; a token may be limited "
                    "only to channels you are a member of."
                    for channel in outside
                ]
            }
        )
    created, secret = ApiToken.create_for(
        caller.user, name, read_only=read_only, channels=channels,
        expires_in_days=expires_in_days,
    )  # fmt: skip
    audit.record(
        "token.created", actor=caller.user, request=request, **audit_details,
        **audit.token_details(created),
    )  # fmt: skip
    return created, secret
