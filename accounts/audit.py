"""The audit log: security-relevant actions, recorded by an explicit call where they happen.

Channel owners read their channel's events (web page and REST); superusers read all of
them in the admin. Events without a channel (token events) are for superusers only.
"""

import functools
import ipaddress

from django.conf import settings

from .models import ApiToken, AuditEvent


def client_address(request):
    """The address of the client that sent ``request``.

    ``REMOTE_ADDR``, unless ``WHARF_TRUSTED_PROXY_COUNT`` proxies stand in front of Wharf:
    then the X-Forwarded-For entry that many places from the right, the one the outermost
    trusted proxy wrote (entries further left come from the client and prove nothing).
    """
    address = request.META.get("REMOTE_ADDR", "")
    proxies = settings.WHARF_TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies > 0 and forwarded:
        entries = [entry.strip() for entry in forwarded.split(",")]
        if len(entries) >= proxies:
            address = entries[-proxies]
    return _normalized(address)


@functools.lru_cache(maxsize=4096)
def _normalized(address):
    """The address in its standard form, or None (cached: every request logs its own)."""
    try:
        return str(ipaddress.ip_address(address.strip("[]")))
    except ValueError:
        return None


def record(action, *, actor=None, token=None, channel=None, request=None, **details):
    """Record that ``action`` happened; return the :class:`AuditEvent`.

    ``token`` is the token the actor used to act, if any. With ``request``, the actor, the
    token (for a DRF request authenticated by token) and the client address are read from
    it unless given. ``channel`` may be a channel that
    was just deleted: its name is kept. ``details`` must be JSON values.
    """
    actor, token, address = _who(actor, token, request)
    event = build(action, actor=actor, token=token, channel=channel, **details)
    event.address = address
    event.save()
    return event


def record_all(events, *, actor=None, token=None, request=None):
    """Record several events of one actor in one statement; return them.

    ``events`` holds ``(action, channel, details)``; ``actor``, ``token`` and ``request``
    are read as by :func:`record`.
    """
    actor, token, address = _who(actor, token, request)
    built = []
    for action, channel, details in events:
        event = build(action, actor=actor, token=token, channel=channel, **details)
        event.address = address
        built.append(event)
    return AuditEvent.objects.bulk_create(built, batch_size=1000)


def _who(actor, token, request):
    """(actor, token, client address) of an event, filled in from ``request`` if given."""
    address = None
    if request is not None:
        if actor is None:
            user = getattr(request, "user", None)
            actor = user if user is not None and user.is_authenticated else None
        if token is None:
            # A DRF request's token, or the one identify() read (a PUT upload).
            caller = getattr(request, "caller", None)
            auth = getattr(request, "auth", None) or getattr(caller, "token", None)
            token = auth if isinstance(auth, ApiToken) else None
        address = client_address(request)
    if actor is None and token is not None:
        actor = token.user
    return actor, token, address


def build(action, *, actor=None, token=None, channel=None, **details):
    """An unsaved event, for recording many at once (``AuditEvent.objects.bulk_create``)."""
    if action not in AuditEvent.ACTIONS:
        raise ValueError(f"Unknown audit action '{action}'.")
    return AuditEvent(
        action=action,
        actor=actor,
        actor_name=actor.get_username() if actor is not None else "",
        token=token,
        token_hint=token.hint if token is not None else "",
        channel=channel if channel is not None and channel.pk is not None else None,
        channel_name=channel.name if channel is not None else "",
        details=details,
    )


def token_details(token):
    """Which token an event is about and what it may do (the event's ``token`` is the one
    that was used to act, which may be another)."""
    channels = sorted(token.channels.values_list("name", flat=True)) if token.limited else None
    return {
        "key_id": token.pk,
        "key": token.hint,
        "name": token.name,
        "read_only": token.read_only,
        "channels": channels,
    }


def visibility_change(channel, was_private, request):
    """Record a change of the channel between public and private, if there was one."""
    if channel.private != was_private:
        record(
            "channel.visibility_changed",
            channel=channel,
            request=request,
            private=channel.private,
        )


def channel_events(channel):
    """The events of one channel, newest first (for its owners)."""
    return AuditEvent.objects.filter(channel=channel).order_by("-created_at", "-pk")
