"""Which channels a package needs, found by solving its dependencies with py-rattler.

The solve reads Wharf channels from their published repodata.json (copied once per etag
from storage into a local folder, as SparseRepoData needs a file), never over HTTP to
this server. Only the package's channel and the related channels the caller may read
take part. External related channels take part when they answer within
:data:`PROBE_SECONDS`; when one does not and the solve fails without it, the answer falls
back to what the dependencies declare (:func:`packages_app.discovery.dependencies.resolve`),
marked not checked.

The package's channel takes part with one label: ``main`` (the channel's own URL) when
a file of the package carries it, else a label its newest file carries (a package
published only to ``dev`` installs from ``/<channel>/label/dev``); the install commands
name that URL. Related channels take part with their own URL.

Results are cached per (channel, label, package, version, platform) and the etags of
every published index used, so a new upload to any of them asks again.
"""

import asyncio
import hashlib
import logging
import re
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import rattler
from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from rattler.exceptions import (
    FetchRepoDataError,
    GatewayError,
    InvalidMatchSpecError,
    IoError,
    SolverError,
)

from accounts.errors import DomainError
from channels_app import install, related
from packages_app import runner, storage
from packages_app.discovery import dependencies, pages
from packages_app.index import repodata
from packages_app.intake import archives
from packages_app.models import MAIN_LABEL, PackageFile, SubdirIndex

log = logging.getLogger(__name__)

PROBE_SECONDS = 2
PROBE_FRESH_SECONDS = 300  # then probed again, in the background
PROBE_KEEP_SECONDS = 24 * 3600
RESULT_CACHE_SECONDS = 3600
SOLVE_SECONDS = 20
INTERNAL_HOST = "https://wharf.internal"
MISSING = re.compile(r"([^\s└─│├][^\n]*?), for which no candidates were found")

# What a typical machine of each platform offers, so packages needing __glibc and the
# like solve as they would there.
VIRTUAL_PACKAGES = {
    "linux": [("__unix", "0"), ("__linux", "5.10"), ("__glibc", "2.28")],
    "osx": [("__unix", "0"), ("__osx", "13.0")],
    "win": [("__win", "0")],
}


@dataclass
class Provided:
    """One package of the solution and the source it comes from."""

    name: str
    version: str
    build: str
    source: dependencies.Source


@dataclass
class InstallChannels:
    platform: str
    sources: list  # the channels needed, the package's own first, in related order
    checked: bool  # False: a fallback to the declared dependencies
    provided: list = field(default_factory=list)
    problem: str = ""
    seconds: float = 0.0
    label: str = MAIN_LABEL  # of the package's channel

    @property
    def related_needed(self):
        """The RelatedChannel entries among :attr:`sources`, for install.snippets."""
        return [source.entry for source in self.sources if source.entry is not None]


def reachable(url):
    """Whether an external channel answers within :data:`PROBE_SECONDS`.

    Only the first look at a channel waits for its probe. The answer is kept for
    :data:`PROBE_KEEP_SECONDS`; once older than :data:`PROBE_FRESH_SECONDS` it is still
    given at once, and the channel is probed again in a thread of this process (one at a
    time per channel), so a channel that went down or came back is known a probe later.
    """
    key = probe_key(url)
    known = cache.get(key)
    if known is None:
        return _probe(url)
    answer, probed_at = known
    stale = time.time() - probed_at > PROBE_FRESH_SECONDS
    if stale and cache.add(f"{key}:probing", True, PROBE_SECONDS * 5):
        runner.in_background(_probe, url)
    return answer


def probe_key(url):
    """The cache key of (answer, when probed) for an external channel."""
    return "install-channels:reachable:" + hashlib.sha256(url.encode()).hexdigest()


def _probe(url):
    # http(s) only: related.parse accepts no other scheme.
    request = urllib.request.Request(f"{url}/noarch/repodata.json", method="HEAD")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=PROBE_SECONDS) as response:  # noqa: S310
            answer = response.status < 400
    except (OSError, ValueError):
        answer = False
    key = probe_key(url)
    cache.set(key, (answer, time.time()), PROBE_KEEP_SECONDS)
    cache.delete(f"{key}:probing")
    return answer


def _published(labelled, subdirs):
    """{(channel id, subdir): published repodata.json entry} of the ``labelled`` (channel
    id, label) pairs' indexes."""
    wanted = Q()
    for channel_id, label in labelled:
        wanted |= Q(channel_id=channel_id, label=label)
    indexes = SubdirIndex.objects.filter(wanted, subdir__in=subdirs)
    return {
        (index.channel_id, index.subdir): index.published_files[repodata.REPODATA]
        for index in indexes
        if repodata.REPODATA in index.published_files
    }


def _local_copy(entry):
    """A local file with the published repodata.json of ``entry``, copied once per etag."""
    folder = settings.DATA_DIR / "solve-cache"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{entry['etag']}.json"
    if not path.exists():
        partial = folder / f"{entry['etag']}.{uuid.uuid4().hex}.part"
        with open(partial, "wb") as out:
            out.writelines(storage.blocks(entry["path"]))
        partial.replace(path)
        _forget_old_copies(folder)
    return path


def _forget_old_copies(folder, keep_seconds=RESULT_CACHE_SECONDS):
    cutoff = time.time() - keep_seconds
    for path in folder.glob("*.json"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except FileNotFoundError:
            pass


def _virtual_packages(platform):
    family = platform.split("-")[0]
    return [
        rattler.GenericVirtualPackage(
            rattler.PackageName(name), rattler.Version(version), rattler.BuildString("0")
        )
        for name, version in VIRTUAL_PACKAGES.get(family, [])
    ]


def _source_url(source, label=MAIN_LABEL):
    if not source.checked:
        return source.url
    return f"{INTERNAL_HOST}/{source.channel.name}{labelled_path(label)}"


def labelled_path(label):
    """What a label adds to its channel's URL."""
    return "" if label == MAIN_LABEL else f"/label/{label}"


class BadRequest(DomainError):
    """A platform, version or label the package does not have; the message says which."""


def for_package(channel, package_name, caller, platform="", version="", label=""):
    """:func:`compute` for a package of the channel, on ``platform`` (default: that of
    its newest file; linux-64 for a noarch package), of ``version`` (default: any), from
    the channel's ``label`` (default: main when a file carries it, else a label of the
    newest file).

    Raises PackageFile.DoesNotExist when the channel has no such package, BadRequest for
    a platform, version or label it does not have.
    """
    found = PackageFile.objects.filter(channel=channel, name=package_name)
    files = list(found.prefetch_related("labels"))
    if not files:
        raise PackageFile.DoesNotExist(f"No package '{package_name}' in channel '{channel.name}'.")
    if platform and platform not in archives.SUBDIRS:
        raise BadRequest(f"Unknown platform '{platform}'; use one of {sorted(archives.SUBDIRS)}.")
    if version:
        files = [f for f in files if f.version == version]
        if not files:
            raise BadRequest(f"'{package_name}' has no version '{version}' here.")
    if platform:
        files = [f for f in files if f.subdir in (platform, "noarch")]
        if not files:
            raise BadRequest(f"'{package_name}' has no file for {platform} or noarch.")
    if not label:
        in_main = any(MAIN_LABEL in f.label_names for f in files)
        label = MAIN_LABEL if in_main else pages.newest_first(files)[0].label_names[0]
    files = [f for f in files if label in f.label_names]
    if not files:
        raise BadRequest(f"'{package_name}' has no file with the label '{label}' here.")
    newest = pages.newest_first(files)[0]
    platform = platform or (newest.subdir if newest.subdir != "noarch" else "linux-64")
    return compute(
        channel, package_name, caller, platform, version=version, record=newest.record,
        label=label,
    )  # fmt: skip


def compute(channel, package_name, caller, platform, *, version=None, record=None,
            label=MAIN_LABEL):  # fmt: skip
    """The channels needed to install ``package_name`` (of ``version``) on ``platform``
    from the channel's ``label`` and its related channels.

    ``record`` (the package's record for that platform) is what the fallback reads when
    the solve cannot be checked.
    """
    own = dependencies.Source(channel)
    sources = [own] + [dependencies.Source(e.target, e) for e in related.visible(channel, caller)]
    subdirs = [platform, "noarch"] if platform != "noarch" else ["noarch"]
    labelled = [(channel.pk, label)] + [
        (s.channel.pk, MAIN_LABEL) for s in sources[1:] if s.checked
    ]
    published = _published(labelled, subdirs)
    external = [s for s in sources if not s.checked]
    reachable_external = {s.url for s in external if reachable(s.url)}
    spec = f"{package_name} =={version}" if version else package_name

    state = [
        (s.channel.pk, [published.get((s.channel.pk, d), {}).get("etag") for d in subdirs])
        if s.checked
        else (s.url, s.url in reachable_external)
        for s in sources
    ]
    asked = repr((spec, platform, label, state))
    key = "install-channels:" + hashlib.sha256(asked.encode()).hexdigest()
    stored = cache.get(key)
    if stored is None:
        stored = _solve(sources, published, subdirs, reachable_external, spec, platform, label)
        if not stored.get("transient"):
            cache.set(key, stored, RESULT_CACHE_SECONDS)

    if stored["problem"] and any(s.url not in reachable_external for s in external):
        return _declared(channel, caller, platform, record, stored["problem"], label)
    return InstallChannels(
        platform=platform,
        sources=[sources[i] for i in stored["sources"]],
        checked=True,
        provided=[Provided(n, v, b, sources[i]) for n, v, b, i in stored["provided"]],
        problem=stored["problem"],
        seconds=stored["seconds"],
        label=label,
    )


def _solve(sources, published, subdirs, reachable_external, spec, platform, label):
    """A solve as plain data: indexes into ``sources`` (for the cache). The package's
    channel, the first source, takes part with ``label``."""
    started = time.perf_counter()
    by_url, repos = {}, []
    for i, source in enumerate(sources):
        if source.checked:
            for subdir in subdirs:
                entry = published.get((source.channel.pk, subdir))
                if entry is not None:
                    url = _source_url(source, label if i == 0 else MAIN_LABEL)
                    repos.append(
                        rattler.SparseRepoData(rattler.Channel(url), subdir, _local_copy(entry))
                    )
                    by_url[url.rstrip("/")] = i
        elif source.url in reachable_external:
            repos.append(rattler.Channel(source.url))
            by_url[source.url.rstrip("/")] = i
    answer = {"sources": [0], "provided": [], "problem": "", "seconds": 0.0}
    try:
        records = asyncio.run(
            rattler.solve(
                repos,
                [spec],
                gateway=rattler.Gateway(cache_dir=settings.DATA_DIR / "solve-cache" / "gateway"),
                platforms=subdirs,
                virtual_packages=_virtual_packages(platform),
                timeout=timedelta(seconds=SOLVE_SECONDS),
            )
        )
    except (SolverError, InvalidMatchSpecError) as exc:
        answer["problem"] = _problem(str(exc))
    except (GatewayError, FetchRepoDataError, IoError) as exc:
        # An external channel that answered the probe failed while read: not cached.
        answer["problem"] = f"A channel could not be read: {exc}"
        answer["transient"] = True
    else:
        provided = sorted(
            (r.name.normalized, str(r.version), str(r.build), by_url[r.channel.rstrip("/")])
            for r in records
        )
        used = {i for *_, i in provided}
        answer["provided"] = provided
        answer["sources"] = [i for i in range(len(sources)) if i == 0 or i in used]
    answer["seconds"] = time.perf_counter() - started
    log.info("solved %s for %s in %.3f s", spec, platform, answer["seconds"])
    return answer


def _problem(message):
    """The solver's explanation without its internal URLs, led by what no channel has."""
    text = "\n".join(line.rstrip() for line in message.splitlines() if line.strip())
    text = text.replace(INTERNAL_HOST + "/", "") or "The dependencies cannot be satisfied."
    missing = list(dict.fromkeys(MISSING.findall(text)))
    if missing:
        return f"No channel provides {', '.join(missing)}.\n\n{text}"
    return text


def _declared(channel, caller, platform, record, problem, label):
    """Fallback: the channels of the declared dependencies, not checked by a solve."""
    declared = dependencies.resolve(channel, record or {}, caller)
    return InstallChannels(
        platform=platform,
        sources=declared.channels,
        checked=False,
        provided=[
            Provided(item.name, item.spec, "", item.source)
            for item in declared.depends
            if item.source is not None
        ],
        problem=problem,
        label=label,
    )


def source_label(request, source, label=MAIN_LABEL):
    """(name, URL) of a source as clients give it: a Wharf channel's name and address
    (of ``label``), or an external channel's URL twice."""
    if source.checked:
        path = f"/{source.channel.name}{labelled_path(label)}"
        return source.channel.name, request.build_absolute_uri(path)
    return source.url, source.url


def snippets(request, channel, package_name, found):
    return install.snippets(
        request, channel, found.related_needed, package=package_name,
        path=labelled_path(found.label),
    )  # fmt: skip


def as_data(request, channel, package_name, found):
    """The API's answer for ``found``."""

    def name_of(source):
        return source_label(request, source)[0]

    return {
        "platform": found.platform,
        "label": found.label,
        "checked": found.checked,
        "channels": [
            {
                "name": name_of(source),
                "url": source_label(request, source, found.label if i == 0 else MAIN_LABEL)[1],
                "checked": source.checked,
            }
            for i, source in enumerate(found.sources)
        ],
        "install": {s.client: s.text for s in snippets(request, channel, package_name, found)},
        "provided": [
            {
                "name": item.name,
                "version": item.version,
                "build": item.build,
                "channel": name_of(item.source),
            }
            for item in found.provided
        ],
        "problem": found.problem,
    }


def page_context(request, channel, package_name, caller):
    """What templates/packages/_install_channels.html shows."""
    found = for_package(channel, package_name, caller)
    return {"found": found, "snippets": snippets(request, channel, package_name, found)}
