"""Where a package's dependencies come from: its channel, then the related channels.

A first approximation of what a solve would say. Each dependency is attributed to the
first Wharf channel, in order — the package's own channel, then the related channels the
visitor may see — that has a package of that name in its catalog. What none of them has
is attributed to the first external related channel, which cannot be checked from here.
"""

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import rattler
from django.urls import reverse
from rattler.exceptions import InvalidMatchSpecError

from channels_app import related
from packages_app.models import Package

# Hosts whose channels have a package page: host -> page of (channel, package name).
PACKAGE_PAGES = {
    "anaconda.org": "https://anaconda.org/{channel}/{name}",
    "conda.anaconda.org": "https://anaconda.org/{channel}/{name}",
    "prefix.dev": "https://prefix.dev/channels/{channel}/packages/{name}",
    "repo.prefix.dev": "https://prefix.dev/channels/{channel}/packages/{name}",
}


def external_package_url(channel_url, name):
    """The web page of package ``name`` in an external channel, if its host has one."""
    parts = urlsplit(channel_url)
    page = PACKAGE_PAGES.get((parts.hostname or "").lower())
    segments = [segment for segment in parts.path.split("/") if segment]
    if page is None or not segments:
        return None
    return page.format(channel=quote(segments[0]), name=quote(name))


@dataclass(eq=False)
class Source:
    """A channel dependencies may come from: the package's own channel, or one of its
    related channels (``entry``, a RelatedChannel: a Wharf channel or an external URL).
    """

    channel: object = None  # a Channel, or None for an external channel
    entry: object = None  # None for the package's own channel

    @property
    def checked(self):
        """Whether Wharf knows which packages the channel has."""
        return self.channel is not None

    @property
    def url(self):
        return self.entry.url if self.entry is not None else ""

    def package_url(self, name):
        if self.channel is not None:
            return reverse("package", kwargs={"channel": self.channel.name, "package_name": name})
        return external_package_url(self.url, name)


@dataclass
class Requirement:
    """One match spec of a record's ``depends`` or ``constrains``."""

    spec: str
    name: str | None  # None when the spec cannot be read
    source: Source | None = None

    @property
    def virtual(self):
        return self.name is not None and self.name.startswith("__")

    @property
    def url(self):
        if self.source is None:
            return None
        return self.source.package_url(self.name)


@dataclass
class Dependencies:
    depends: list
    constrains: list
    # The package's channel, then each related channel that provides a dependency.
    channels: list


def requirement(spec):
    try:
        name = rattler.MatchSpec(spec).name.normalized
    except (InvalidMatchSpecError, AttributeError, TypeError):
        name = None
    return Requirement(spec, name)


def _specs(record, key):
    specs = record.get(key)
    if not isinstance(specs, list):
        return []
    return [spec for spec in specs if isinstance(spec, str)]


def resolve(channel, record, caller):
    """The record's dependencies and constraints, each with the channel providing it."""
    depends = [requirement(spec) for spec in _specs(record, "depends")]
    constrains = [requirement(spec) for spec in _specs(record, "constrains")]
    own = Source(channel)
    sources = [own] + [Source(e.target, e) for e in related.visible(channel, caller)]
    wharf = [source for source in sources if source.checked]
    external = next((source for source in sources if not source.checked), None)

    wanted = [r for r in depends + constrains if r.name is not None and not r.virtual]
    provided = set(
        Package.objects.filter(
            channel__in=[source.channel for source in wharf],
            name__in={r.name for r in wanted},
        ).values_list("channel_id", "name")
    )
    for item in wanted:
        item.source = next(
            (source for source in wharf if (source.channel.pk, item.name) in provided), external
        )
    used = [item.source for item in depends]
    needed = [source for source in sources if source is own or source in used]
    return Dependencies(depends, constrains, needed)
