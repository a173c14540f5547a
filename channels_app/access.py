"""The one answer to "may this caller do this to this channel?".

Every route that touches a channel — conda file access, uploads, REST, web pages —
calls :func:`authorize` (one channel) or :func:`readable_channels` (lists and search).

The rules:
- a public channel is readable by everyone, anonymous included;
- a user's role on a channel is the highest of their direct membership, the roles of
  their teams on it, and — for a channel of an organisation — owner for the
  organisation's owners and admins (being a member of the organisation alone gives none);
  which rows give which role is defined once, in :mod:`channels_app.roles`, and every
  reading of a role here, on the model and in the conda file lookup comes from there;
- a private channel is readable by those with a role; to everyone else it does not exist:
  anonymous callers get 401 (they may have forgotten their token) and signed-in callers
  get 404, exactly as for a channel that really does not exist;
- writing needs a role that grants the action, and a token that is not read-only and
  not limited to other channels.
"""

import enum

from django.core.exceptions import PermissionDenied
from django.db.models import CharField, Q, Value
from django.http import Http404

from accounts.authentication import Caller
from accounts.errors import DomainError
from accounts.models import Organization, OrgRole

from .models import Channel, Kind, Role, highest_role
from .roles import SOURCES as ROLE_SOURCES
from .roles import annotations, granting


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


class AccessError(DomainError):
    status = 403


class NotAuthenticated(AccessError):
    status = 401


class NotFound(AccessError):
    status = 404


class Conflict(AccessError):
    """Allowed to the caller, but not to this kind of channel."""

    status = 409


# Channels whose packages come from elsewhere take no uploads (channels_app.models.Kind).
_NOT_UPLOADED = {
    Kind.PROXY: "a proxy of {url}: its packages come from there",
    Kind.MIRROR: "a mirror of {url}: its packages are copied from there",
    Kind.COMBINED: "a combined channel: its packages are those of the channels it combines",
}


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
    channel = with_roles(channels, user.pk).first()
    if channel is not None:
        found = (getattr(channel, source) for source in ROLE_SOURCES)
        prime_role(channel, user, highest_role(*found))
    return channel


def with_roles(channels, user_id):
    """``channels`` with the user's role from each source annotated (named as in
    :data:`ROLE_SOURCES`; :func:`highest_role` of them is the user's role), read in the
    same query as the channels.

    ``user_id`` may be an expression standing for the id, for a statement compiled once
    and run with the id filled in (the conda file lookup). None is an anonymous caller,
    who has no role: the sources are then not looked up at all, only NULL is read.
    """
    if user_id is None:
        nothing = Value(None, output_field=CharField())
        return channels.annotate(**dict.fromkeys(ROLE_SOURCES, nothing))
    return channels.annotate(**annotations(user_id))


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
    if action in (Action.UPLOAD, Action.REPLACE_PACKAGE) and channel.kind != Kind.HOSTED:
        upstream = getattr(channel, "upstream", None)
        what = _NOT_UPLOADED[channel.kind].format(url=upstream.url if upstream else "?")
        raise Conflict(f"Channel '{channel.name}' takes no uploads: it is {what}.")
    return channel


def readable_channels(caller):
    """Channels the caller may read, as a queryset."""
    visible = Q(private=False)
    if caller.user.is_authenticated:
        member = Q(pk__isnull=False) if caller.user.is_superuser else has_role(caller.user)
        if caller.token is not None and caller.token.limited:
            member &= Q(pk__in=caller.token.channel_ids)
        visible |= member
    return Channel.objects.filter(visible).distinct()


def has_role(user, roles=tuple(Role)):
    """A filter on channels: those where the user gets one of ``roles`` from some source
    (direct membership, team, organisation: the sources :func:`with_roles` reads).

    ``roles`` must hold every role above the lowest it holds ("owner", "maintainer or
    higher", ...): then that is the same as the user's highest role being one of them.
    """
    return granting(user.pk, roles)


def roles_of(user, channels):
    """{channel id: the user's role} for those of ``channels`` where they hold one (by
    membership, team or organisation; a superuser's rights everywhere are not counted)."""
    rows = with_roles(Channel.objects.filter(pk__in=channels.values("pk")), user.pk)
    roles = {}
    for channel_id, *found in rows.values_list("pk", *ROLE_SOURCES):
        role = highest_role(*found)
        if role is not None:
            roles[channel_id] = role
    return roles


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
    if channel.kind != Kind.HOSTED:  # its packages come from elsewhere (check, above)
        actions = actions - {Action.UPLOAD, Action.REPLACE_PACKAGE}
    return actions


# -- organisations ------------------------------------------------------------------------


class OrgAction(enum.Enum):
    READ = "see"
    SEE_MEMBERS = "see the members and teams of"
    MANAGE_MEMBERS = "manage the members of"
    MANAGE_TEAMS = "manage the teams of"
    CREATE_CHANNEL = "create channels in"
    CHANGE = "change"
    DELETE = "delete"


ORG_ROLE_ACTIONS = {
    OrgRole.OWNER: frozenset(OrgAction),
    OrgRole.ADMIN: frozenset(OrgAction) - {OrgAction.DELETE},
    OrgRole.MEMBER: frozenset({OrgAction.READ, OrgAction.SEE_MEMBERS}),
}


def org_role(user, organization):
    """The user's role in the organisation, or None; superusers act as its owners."""
    if user.is_authenticated and user.is_superuser:
        return OrgRole.OWNER
    return organization.role_of(user)


def org_allows(user, organization, action):
    """Whether the user's organisation role grants ``action`` (credentials aside)."""
    if action is OrgAction.READ:
        return True
    role = org_role(user, organization)
    return role is not None and action in ORG_ROLE_ACTIONS[role]


def organizations_allowing(user, action):
    """The organisations where the user's role grants ``action``, as a queryset: the list
    form of :func:`org_allows` for an action beyond READ (a superuser's rights everywhere
    are not counted, as in :func:`has_role`)."""
    if not user.is_authenticated:
        return Organization.objects.none()
    roles = [role for role, actions in ORG_ROLE_ACTIONS.items() if action in actions]
    return Organization.objects.filter(members__user=user, members__role__in=roles)


def org_refusal(user, organization, action):
    """Why the user's organisation role does not grant ``action``, or None when it does."""
    if org_allows(user, organization, action):
        return None
    role = org_role(user, organization)
    return f"You may not {action.value} '{organization.name}'" + (
        f" as {role}." if role else "; you are not a member."
    )


def authorize_org(caller, org_name, action=OrgAction.READ):
    """Return the organisation if the caller may do ``action`` to it; raise AccessError.

    Organisations are public, like their public channels: anyone may see one. Their
    members and teams are for their members; changes need an owner or admin (deleting,
    an owner), and a token that is neither read-only nor limited to channels.
    """
    organization = Organization.objects.filter(name=org_name).first()
    if organization is None:
        raise NotFound(f"Organisation '{org_name}' not found.")
    if action in (OrgAction.READ, OrgAction.SEE_MEMBERS):
        if action is OrgAction.SEE_MEMBERS and not org_allows(caller.user, organization, action):
            if caller.is_anonymous:
                raise NotAuthenticated(f"Sign in to see the members of '{org_name}'.")
            raise Forbidden(f"Only members of '{org_name}' see its members and teams.")
        return organization
    if caller.is_anonymous:
        raise NotAuthenticated(f"Sign in or send a token to {action.value} '{org_name}'.")
    token = caller.token
    if token is not None and token.is_narrowed:
        raise Forbidden(
            "This token is read-only or limited to channels; managing an organisation needs "
            "a full token."
        )
    refusal = org_refusal(caller.user, organization, action)
    if refusal:
        raise Forbidden(refusal)
    return organization


def page_organization(request, org_name, action=OrgAction.READ):
    """:func:`authorize_org` for a web page: the organisation, or Http404 / PermissionDenied."""
    try:
        return authorize_org(Caller(request.user), org_name, action)
    except NotFound:
        raise Http404(f"Organisation '{org_name}' not found.") from None
    except (NotAuthenticated, Forbidden) as exc:
        raise PermissionDenied(exc.message) from None
