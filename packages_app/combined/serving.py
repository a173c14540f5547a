"""The conda files of a combined channel: its members', as the caller may read them.

``packages_app.conda.views.channel_file`` hands a combined channel's requests here once
the caller may read the combined channel. Each answer is made of the members the caller
may read (asked of :func:`channels_app.access.readable_channels`): a member they may not
read contributes nothing, so no header, ETag or error tells it is there.

- index files of ``<subdir>/`` come from the entry built for the members' published
  state (:mod:`.cache`, :mod:`.merge`, :mod:`.documents`), answered as a hosted channel's
  (strong ETag, 304, ``no-cache``); a subdir no member publishes is an empty one;
- a shard is served when the caller's shard index names it, from the member that stores
  it (the winner of its name), as that member serves it;
- a package file is the winning member's (the member that serves the file's package
  name), answered as that member would answer it and counted as its download;
- ``channeldata.json`` holds each package name's entry from the member that wins it;
- there are no labels: ``/<channel>/label/<label>/`` is not found.
"""

import hashlib
import re

import orjson
from django.http import HttpResponse
from django.utils.cache import get_conditional_response

from channels_app.access import readable_channels
from channels_app.models import CombinedMember, Kind
from packages_app.conda import responses
from packages_app.conda.responses import error_response
from packages_app.discovery import catalog
from packages_app.index import repodata
from packages_app.intake import archives
from packages_app.models import MAIN_LABEL, PackageFile
from packages_app.upstream import serving as upstream

from . import cache, merge

SHARD_NAME = re.compile(r"^shards/([0-9a-f]{64})\.msgpack\.zst$")
RETRY_SECONDS = "5"


def channel_file(request, caller, channel, path, label):
    """The answer for ``path`` of the combined ``channel``, which ``caller`` may read."""
    if label is not None:
        return error_response(404, f"No label '{label}' in channel '{channel.name}'.")
    if path == "notices.json":
        return responses.notices(request, channel)
    members = readable_members(caller, channel)
    if path == "channeldata.json":
        return _channeldata(request, channel, members)
    subdir, _, name = path.partition("/")
    if subdir not in archives.SUBDIRS or not name:
        return error_response(404, f"No file '{path}' in channel '{channel.name}'.")
    scope = "private" if channel.private else "public"
    try:
        found, sources = _entry(channel, subdir, members)
        if found is not None and name in repodata.INDEX_FILES and name != repodata.SHARD_INDEX:
            found = cache.with_documents(found, sources)
    except cache.Busy as exc:
        response = error_response(503, str(exc))
        response["Retry-After"] = RETRY_SECONDS
        return response
    if name in repodata.INDEX_FILES:
        files, at = {}, None
        if found is not None:
            at = found.built_at
            files = cache.files_with_bz2(found) if name == repodata.REPODATA_BZ2 else found.files
        return responses.index_file(request, channel, subdir, name, scope, MAIN_LABEL, files, at)
    shard = SHARD_NAME.match(name)
    if shard:
        return _shard(request, channel, members, found, subdir, shard.group(1))
    return _package_file(request, caller, channel, members, found, subdir, name)


def readable_members(caller, channel):
    """The members of ``channel`` the caller may read, in priority order."""
    rows = CombinedMember.objects.filter(channel=channel, member__in=readable_channels(caller))
    return [row.member for row in rows.select_related("member").order_by("position")]


def _entry(channel, subdir, members):
    """The entry for ``subdir`` with its shard index and the sources it was built from;
    (None, sources) when no member publishes the subdir."""
    for member in members:
        if member.kind == Kind.PROXY:
            # Its copy of the subdir, fetched or refreshed as its own clients would have
            # it; an upstream that does not answer leaves the member out of this answer.
            upstream.ensure_copy(member, subdir)
    sources = cache.sources_of(members)
    if not any(subdir in source.indexes for source in sources):
        return None, sources
    return cache.entry(channel, subdir, sources), sources


def _scope(channel, member):
    return "private" if channel.private or member.private else "public"


def _shard(request, channel, members, found, subdir, digest):
    """A shard the caller's shard index names, as the member that stores it serves it."""
    winner = cache.facts(found)["shards"].get(digest) if found else None
    member = next((m for m in members if m.pk == winner), None)
    if member is None:
        return error_response(404, "No such shard.")
    return responses.shard(request, member, subdir, digest, _scope(channel, member), MAIN_LABEL)


def _package_file(request, caller, channel, members, found, subdir, filename):
    """The winning member's answer for a package file."""
    missing = error_response(404, f"No file '{subdir}/{filename}' in channel '{channel.name}'.")
    winner = cache.facts(found)["winners"].get(merge.package_name(filename)) if found else None
    member = next((m for m in members if m.pk == winner), None)
    if member is None:
        return missing
    row = (
        PackageFile.objects.filter(channel=member, subdir=subdir, filename=filename)
        .values_list("storage_path", "sha256", "size", "uploaded_at")
        .first()
    )
    scope = _scope(channel, member)
    if row is None:
        if member.kind == Kind.PROXY:
            return upstream.package_file(request, member, subdir, filename, scope, None)
        return missing
    return responses.package_file(request, member, subdir, filename, scope, *row)


def _channeldata(request, channel, members):
    """channeldata.json: each package name's entry from the first member that has it."""
    packages, subdirs = {}, {"noarch"}
    for member in members:
        document = catalog.channeldata(member, MAIN_LABEL)
        subdirs.update(document["subdirs"])
        for name, entry in document["packages"].items():
            packages.setdefault(name, entry)
    merged = {"channeldata_version": 1, "packages": dict(sorted(packages.items()))}
    body = orjson.dumps({**merged, "subdirs": sorted(subdirs)})
    etag = f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'
    answer = get_conditional_response(request, etag=etag)
    if answer is None:
        answer = HttpResponse(body, content_type="application/json")
    answer["ETag"] = etag
    answer["Cache-Control"] = responses.index_cache_control(
        "private" if channel.private else "public"
    )
    return answer
