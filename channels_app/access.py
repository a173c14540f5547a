"""The one answer to "may this caller do this to this channel?".

Every route that touches a channel — conda file access, uploads, REST, web pages —
calls :func:`authorize` (one channel) or :func:`readable_channels` (lists and search).

The rules:
- a public channel is readable by everyone, anonymous included;
- a private channel is readable by its members; to everyone else it does not exist:
  anonymous callers get 401 (they may have forgotten their token) and signed-in callers
  get 404, exactly as for a channel that really does not exist;
- writing needs a role that grants the action, and a token that is not read-only and
  not limited to other channels.
"""

import enum

from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Q, Subquery
from django.http import Http404

from accounts.authentication import Caller

from .models import Channel, Membership, Role


class Action(enum.Enum):
    READ = "read"
    UPLOAD = "upload"
    DELETE_PACKAGE = "delete packages"
    YANK_PACKAGE = "yank packages"
    LABEL_PACKAGE = "label packages"
    REPLACE_PACKAGE = "replace packages"
    MANAGE = "manage"
    DELETE_CHANNEL = "delete the channel"


ROLE_ACTIONS = {
    Role.OWNER: frozenset(Action),
    Role.MAINTAINER: frozenset(
        {
            Action.READ,
            Action.UPLOAD,
            Action.DELETE_PACKAGE,
            Action.YANK_PACKAGE,
            Action.LABEL_PACKAGE,
        }
    ),
    Role.MEMBER: frozenset({Action.READ}),
}


class AccessError(Exception):
    status = 403

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class NotAuthenticated(AccessError):
    status = 401


class NotFound(AccessError):
    status = 404


class Forbidden(AccessError):
    status = 403


def _hidden(caller, name):
    if caller.is_anonymous:
        return NotAuthenticated(
            f"Channel '{name}' needs credentials: send a token (Bearer, Basic or /t/<token>/)."
        )
    return NotFound(f"Channel '{name}' not found.")


def effective_role(caller, channel):
    """The caller's role on the channel as far as the credential used allows."""
    if caller.token is not None and not caller.token.allows_channel(channel):
        return None
    return channel.role_of(caller.user)


def prime_role(channel, user, role):
    """Record the user's role on the channel, read along with it (saves a query)."""
    if user.is_authenticated:
        channel.__dict__.setdefault("_roles", {})[user.pk] = role


def channel_for(caller, channel_name):
    """The channel of that name, or None, read with the caller's role in one query."""
    user = caller.user
    channels = Channel.objects.filter(name=channel_name)
    if not user.is_authenticated or user.is_superuser:
        return channels.first()
    roles = (
        Membership.objects.filter(channel=OuterRef("pk"), user=user.pk).order_by().values("role")
    )
    channel = channels.annotate(caller_role=Subquery(roles[:1])).first()
    if channel is not None:
        prime_role(channel, user, channel.caller_role)
    return channel


def authorize(caller, channel_name, action=Action.READ):
    """Return the channel if the caller may do ``action`` to it; raise AccessError."""
    return check(caller, channel_for(caller, channel_name), channel_name, action)


def check(caller, channel, channel_name, action=Action.READ):
    """:func:`authorize` for a channel already read (None: there is no such channel).

    For callers that read the channel together with other rows; the caller's role must
    have been read with it (:func:`prime_role`) or is read here.
    """
    if channel is None:
        raise _hidden(caller, channel_name)
    role = effective_role(caller, channel)
    if channel.private and role is None:
        raise _hidden(caller, channel_name)
    if action is Action.READ:
        return channel
    if caller.is_anonymous:
        raise NotAuthenticated(f"Sign in or send a token to {action.value} in '{channel.name}'.")
    token = caller.token
    if token is not None and not token.allows_channel(channel):
        raise Forbidden(f"This token is limited to other channels than '{channel.name}'.")
    if token is not None and token.read_only:
        raise Forbidden("This token is read-only.")
    if role is None or action not in ROLE_ACTIONS[Role(role)]:
        raise Forbidden(
            f"You may not {action.value} in channel '{channel.name}'"
            + (f" as {role}." if role else "; you are not a member.")
        )
    return channel


def readable_channels(caller):
    """Channels the caller may read, as a queryset."""
    visible = Q(private=False)
    if caller.user.is_authenticated:
        if caller.user.is_superuser:
            member = Q(pk__isnull=False)
        else:
            member = Q(memberships__user=caller.user)
        if caller.token is not None and caller.token.limited:
            member &= Q(pk__in=caller.token.channel_ids)
        visible |= member
    return Channel.objects.filter(visible).distinct()


def page_channel(request, channel_name, action=Action.READ):
    """:func:`authorize` for a web page: the channel, or Http404 / PermissionDenied.

    A private channel the visitor may not read answers exactly as a missing one does.
    """
    try:
        return authorize(Caller(request.user), channel_name, action)
    except (NotAuthenticated, NotFound):
        raise Http404(f"Channel '{channel_name}' not found.") from None
    except Forbidden as exc:
        raise PermissionDenied(exc.message) from None


def allowed_actions(caller, channel):
    """The actions the caller may take on a channel they may read (for showing controls)."""
    role = effective_role(caller, channel)
    if role is None or caller.is_anonymous:
        return frozenset({Action.READ})
    actions = ROLE_ACTIONS[Role(role)]
    if caller.token is not None and caller.token.read_only:
        return frozenset({Action.READ})
    return actions
