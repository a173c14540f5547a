"""Conda requests to a proxy channel (after the access policy allowed them).

Index files: the copy Wharf keeps is answered at once, as a hosted channel's; when it is
older than the upstream's ``refresh_seconds`` one refresh is sent to the background (one
at a time per subdir, across processes). Only the first request for a subdir waits for
the upstream, at most ``WHARF_UPSTREAM_FIRST_FETCH_SECONDS``, and gets a 504 naming the
upstream if it did not answer by then (502 if it answered with an error).

Package files: stored ones are answered as a hosted channel's; the others are fetched
from the upstream while the client receives them (:mod:`.files`).
"""

import time
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from packages_app import runner
from packages_app.conda import responses
from packages_app.models import MAIN_LABEL, SubdirIndex, UpstreamSubdir

from . import files, refresh

# A refresh sent this long ago and not finished was lost (its worker died): send again.
REFRESH_LOST_AFTER = timedelta(seconds=60)
POLL_SECONDS = 0.05


# (channel id, subdir) -> time.monotonic() until which this process knows the copy is
# fresh: until then a request costs what a hosted channel's does (the lookup's one query).
_fresh_until = {}


def _copy_of(channel, subdir):
    """The (SubdirIndex, UpstreamSubdir) of the subdir with a copy published, refreshed
    in the background when old; or an error answer when the first copy is not there in
    time."""
    index, state = refresh.subdir_state(channel, subdir)
    upstream = channel.upstream
    now = timezone.now()
    if not index.published_files:
        if not _wait_for_first_copy(channel, index, state):
            state.refresh_from_db()
            if state.error:
                return None, responses.error_response(
                    502,
                    f"Channel '{channel.name}' proxies {upstream.url}, which could not be "
                    f"read for {subdir}: {state.error}",
                )
            return None, responses.error_response(
                504,
                f"Channel '{channel.name}' proxies {upstream.url}, which did not answer for "
                f"{subdir} within {settings.WHARF_UPSTREAM_FIRST_FETCH_SECONDS} s; the copy "
                "is still being fetched: try again shortly.",
            )
        index.refresh_from_db()
        state.refresh_from_db()
    # A first copy is published a moment before its refresh records when it asked.
    checked_at = state.checked_at or index.published_at
    stale_at = checked_at and checked_at + timedelta(seconds=upstream.refresh_seconds)
    if stale_at is None or stale_at < now:
        _send_refresh(channel, state, now)
    else:
        left = (stale_at - now).total_seconds()
        _fresh_until[(channel.pk, subdir)] = time.monotonic() + left
    return (index, state), None


def ensure_copy(channel, subdir):
    """Have the proxy ``channel``'s copy of ``subdir`` published (the first fetch waited
    for, as a client's first request waits) and refreshed when old, for those that serve
    it otherwise (a combined channel). Returns None, or the answer a client would get when
    the first copy is not there in time."""
    if _fresh_until.get((channel.pk, subdir), 0) > time.monotonic():
        return None
    _, error = _copy_of(channel, subdir)
    return error


def index_file(request, channel, subdir, name, scope, row):
    """An index file of a proxy channel; ``row``: its index row as the lookup read it."""
    published_files, published_at = row if row else (None, None)
    if not (published_files and _fresh_until.get((channel.pk, subdir), 0) > time.monotonic()):
        copy, error = _copy_of(channel, subdir)
        if error is not None:
            return error
        index, _ = copy
        published_files, published_at = index.published_files, index.published_at
    return responses.index_file(
        request, channel, subdir, name, scope, MAIN_LABEL, published_files, published_at
    )


def _send_refresh(channel, state, now):
    """Send one refresh of the subdir unless one is on its way; True if this sent it."""
    claimed = (
        UpstreamSubdir.objects.filter(pk=state.pk)
        .filter(Q(refresh_sent_at__isnull=True) | Q(refresh_sent_at__lt=now - REFRESH_LOST_AFTER))
        .update(refresh_sent_at=now)
    )
    if claimed:
        runner.send(refresh.refresh_subdir, channel.pk, state.index.subdir, detached=True)
    return bool(claimed)


def _wait_for_first_copy(channel, index, state):
    """Have the first copy fetched (by this request or one already on its way); True
    once it is published, False after the bounded wait."""
    _send_refresh(channel, state, timezone.now())
    deadline = time.monotonic() + settings.WHARF_UPSTREAM_FIRST_FETCH_SECONDS
    while time.monotonic() < deadline:
        row = SubdirIndex.objects.filter(pk=index.pk).values_list("published_files", flat=True)
        if row.first():
            return True
        state.refresh_from_db(fields=["refresh_sent_at", "error_at"])
        if state.refresh_sent_at is None and state.error_at is not None:
            return False  # it failed; the error is answered
        time.sleep(POLL_SECONDS)
    return False


def package_file(request, channel, subdir, filename, scope, row):
    """A package file of a proxy channel: stored (``row``), or fetched through."""
    if row and row[0] is not None:
        return responses.package_file(request, channel, subdir, filename, scope, *row)
    copy, error = _copy_of(channel, subdir)
    if error is not None:
        return error
    index, state = copy
    record = files.find_record(index, filename)
    if record is None:
        return responses.error_response(
            404,
            f"No file '{subdir}/{filename}' in channel '{channel.name}' (nor in the index of "
            "its upstream).",
        )
    return files.fetch_through(request, channel, subdir, filename, scope, record, state.base_url)
