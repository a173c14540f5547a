"""Where a channel's packages come from: uploads (hosted), an upstream channel (proxy,
mirror) or other channels here (combined). Who may set that up, and its checks.

An upstream URL is a request Wharf makes on its users' behalf, so only site
administrators set one (``WHARF_UPSTREAM_CREATORS=org-owners`` lets an organisation's
owners and admins do so for its channels), and a URL whose host resolves to a loopback,
private, link-local or otherwise reserved address is refused unless
``WHARF_UPSTREAM_PRIVATE_NETWORKS`` is on: :func:`check_address` is asked again for every
connection and every redirect the fetching code follows.
"""

import ipaddress
import socket
from urllib.parse import urlsplit

import rattler
from django.conf import settings
from django.core.exceptions import ValidationError

from accounts.models import OrgRole

from .models import CombinedMember, Kind, Upstream

MAX_COMBINED = 20
MAX_FILTER_ENTRIES = 500
KNOWN_SUBDIRS = frozenset(str(subdir) for subdir in rattler.Subdir.all())
UPSTREAM_FIELDS = (
    "url", "refresh_seconds", "username", "password", "token", "platforms", "include",
    "exclude", "keep_versions", "remove_missing",
)  # fmt: skip
SECRET_FIELDS = ("username", "password", "token")
# What may change after creation (the admin's upstream form).
EDITABLE_FIELDS = (
    "refresh_seconds", "platforms", "include", "exclude", "keep_versions", "remove_missing",
)  # fmt: skip
MIN_REFRESH_SECONDS = 10


class UnsafeAddress(ValueError):
    """An upstream host that resolves to an address Wharf does not connect to."""


def check_address(host, port=None):
    """Raise UnsafeAddress unless every address ``host`` resolves to is public (or
    private networks are allowed); return the addresses."""
    try:
        found = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeAddress(f"The upstream host '{host}' does not resolve ({exc}).") from None
    # IPv4 first: the connection goes to the first one.
    addresses = sorted({info[4][0] for info in found}, key=lambda a: (":" in a, a))
    if settings.WHARF_UPSTREAM_PRIVATE_NETWORKS:
        return addresses
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global or ip.is_multicast:
            raise UnsafeAddress(
                f"The upstream host '{host}' resolves to {address}, a loopback, private or "
                "link-local address; Wharf does not fetch from those unless the site sets "
                "WHARF_UPSTREAM_PRIVATE_NETWORKS=1."
            )
    return addresses


def check_url(url):
    """The upstream channel URL, normalised (no trailing slash); ValidationError if it
    is not an http(s) URL of a host Wharf may fetch from."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"'{url}' is not an http(s) URL of a conda channel.")
    if parts.username or parts.password:
        raise ValidationError(
            "Put the upstream's credentials in 'username'/'password' or 'token', not in its "
            "URL: they are kept server-side and never shown."
        )
    if parts.query or parts.fragment:
        raise ValidationError(f"'{url}' has a query or fragment; a channel URL has none.")
    try:
        check_address(parts.hostname, parts.port)
    except UnsafeAddress as exc:
        raise ValidationError(str(exc)) from None
    return url.rstrip("/")


def may_set_upstream(user, organization=None):
    """Whether ``user`` may create a proxy or mirror channel (in ``organization``)."""
    if user.is_superuser:
        return True
    if settings.WHARF_UPSTREAM_CREATORS != "org-owners" or organization is None:
        return False
    member = organization.members.filter(user=user).first()
    return member is not None and member.role in (OrgRole.OWNER, OrgRole.ADMIN)


def check_upstream(value, mode):
    """The validated fields of an ``upstream`` object for ``mode`` (proxy or mirror)."""
    if not isinstance(value, dict):
        raise ValidationError("'upstream' is an object with at least a 'url'.")
    unknown = sorted(set(value) - set(UPSTREAM_FIELDS) - {"mode"})
    if unknown:
        raise ValidationError(f"Unknown upstream fields: {', '.join(unknown)}.")
    fields = {"url": check_url(value.get("url"))}
    refresh = value.get("refresh_seconds", 600)
    if not isinstance(refresh, int) or isinstance(refresh, bool) or refresh < MIN_REFRESH_SECONDS:
        raise ValidationError(
            f"'refresh_seconds' is a whole number of at least {MIN_REFRESH_SECONDS}."
        )
    fields["refresh_seconds"] = refresh
    for name in SECRET_FIELDS:
        secret = value.get(name) or ""
        if not isinstance(secret, str) or len(secret) > 500:
            raise ValidationError(f"'{name}' is text of at most 500 characters.")
        fields[name] = secret
    if fields["token"] and (fields["username"] or fields["password"]):
        raise ValidationError("Give the upstream either a 'token' or 'username'/'password'.")
    mirror_only = [n for n in ("platforms", "include", "exclude", "keep_versions") if value.get(n)]
    if mode == Kind.PROXY and mirror_only:
        raise ValidationError(
            f"{', '.join(mirror_only)}: only a mirror channel chooses what it copies."
        )
    for name in ("platforms", "include", "exclude"):
        entries = value.get(name) or []
        if not isinstance(entries, list) or not all(isinstance(e, str) and e for e in entries):
            raise ValidationError(f"'{name}' is a list of non-empty strings.")
        if len(entries) > MAX_FILTER_ENTRIES or any(len(e) > 200 for e in entries):
            raise ValidationError(
                f"'{name}' holds at most {MAX_FILTER_ENTRIES} entries of at most 200 characters."
            )
        fields[name] = entries
    problems = [f"'platforms': unknown subdir '{p}'." for p in fields["platforms"]
                if p not in KNOWN_SUBDIRS]  # fmt: skip
    problems += [
        problem
        for name in ("include", "exclude")
        for problem in map(lambda entry, n=name: _spec_problem(n, entry), fields[name])
        if problem
    ]
    if problems:
        raise ValidationError(problems)
    keep = value.get("keep_versions")
    if keep is not None and (not isinstance(keep, int) or isinstance(keep, bool) or keep < 1):
        raise ValidationError("'keep_versions' is a whole number of at least 1, or null.")
    fields["keep_versions"] = keep
    fields["remove_missing"] = bool(value.get("remove_missing", False))
    return fields


def _spec_problem(field, entry):
    """Why ``entry`` is not a package name glob or match spec, or None."""
    try:
        spec = rattler.MatchSpec(entry, exact_names_only=False)
    except Exception as exc:  # noqa: BLE001 - rattler's parse errors
        return f"'{field}': '{entry}' is not a package name or match spec ({exc})."
    if spec.channel is not None:
        return f"'{field}': '{entry}' names a channel; entries name packages of the upstream."
    return None


def check_combines(names, caller_may_read):
    """The channels a combined channel combines, in order; ``caller_may_read(name)``
    gives the channel the creator may read, or None."""
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValidationError("'combines' is a non-empty list of channel names.")
    if len(names) > MAX_COMBINED:
        raise ValidationError(f"A combined channel combines at most {MAX_COMBINED} channels.")
    if len(set(names)) != len(names):
        raise ValidationError("'combines' names a channel twice.")
    channels, problems = [], []
    for name in names:
        channel = caller_may_read(name)
        if channel is None:
            problems.append(f"No channel '{name}' here that you may read.")
        elif channel.kind == Kind.COMBINED:
            problems.append(f"'{name}' is a combined channel itself; combine its channels.")
        else:
            channels.append(channel)
    if problems:
        raise ValidationError(problems)
    return channels


def attach(channel, *, upstream=None, combines=None):
    """Store where the new ``channel`` takes its packages from."""
    if upstream is not None:
        Upstream.objects.create(channel=channel, **upstream)
    for position, member in enumerate(combines or ()):
        CombinedMember.objects.create(channel=channel, position=position, member=member)


def public_upstream(channel):
    """The upstream as answers show it: never its credentials."""
    if channel.kind not in (Kind.PROXY, Kind.MIRROR):
        return None
    upstream = getattr(channel, "upstream", None)
    if upstream is None:
        return None
    shown = {"url": upstream.url, "mode": channel.kind, "refresh_seconds": upstream.refresh_seconds}
    if channel.kind == Kind.MIRROR:
        for name in ("platforms", "include", "exclude", "keep_versions", "remove_missing"):
            shown[name] = getattr(upstream, name)
    shown["authenticated"] = bool(upstream.token or upstream.username)
    shown["last_refresh"] = upstream.last_refresh
    shown["last_error"] = upstream.last_error or None
    return shown


def combined_members(channel):
    """The channels ``channel`` combines, in order."""
    rows = CombinedMember.objects.filter(channel=channel).select_related("member")
    return [row.member for row in rows.order_by("position")]
