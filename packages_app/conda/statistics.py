"""Download counts: one row per package file and day, and the numbers read from them.

A download is a GET of a package file that sends it from its first byte: a 200, a 206
whose range starts at 0, or the redirect to the bucket. Counting must not slow it down.
Embedded mode adds to the day's row at once. In services mode the download adds 1 to a
Redis hash of the day (one HINCRBY, short timeouts; when Redis fails the download still
succeeds, and the loss is logged and counted in ``wharf_download_counts_lost``, as
when embedded mode's database refuses the write), and
:func:`flush` (Celery beat, every ``WHARF_STATS_FLUSH_SECONDS``) moves the hashes into the
database: each is first renamed to a batch key of its own, so increments that arrive
meanwhile start a new hash, and a batch is added in the same transaction that records
its key, so a flush that died after the commit is never added twice.
"""

import functools
import logging
import time
import uuid
from datetime import date, timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Count, Sum
from django.utils import timezone
from prometheus_client import Counter

from packages_app.models import DailyDownloads, DownloadBatch, PackageFile

log = logging.getLogger(__name__)

DAY_PREFIX = "wharf:downloads:day:"
BATCH_PREFIX = "wharf:downloads:batch:"
# After a failure Redis is not asked again for this long: a Redis that hangs must not
# cost every download its timeout.
REDIS_RETRY_SECONDS = 5
BATCHES_KEPT_DAYS = 7
DEFAULT_DAYS = 30
MAX_DAYS = 366

LOST = Counter(
    "wharf_download_counts_lost",
    "Downloads that could not be counted because Redis did not answer.",
)

_redis_down_until = 0.0


@functools.cache
def _redis():
    import redis

    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=0.5, socket_timeout=0.5)


def _field(channel_id, subdir, filename):
    return f"{channel_id}/{subdir}/{filename}"


def name_and_version(filename):
    """A conda file name is ``<name>-<version>-<build>.<ext>``; only the name has dashes."""
    stem = filename.removesuffix(".conda").removesuffix(".tar.bz2")
    name, version, _build = stem.rsplit("-", 2)
    return name, version


def is_download(request, response):
    """Whether this answer to a package file request sends the file from its first byte."""
    if request.method != "GET":
        return False
    if response.status_code == 206:
        return response["Content-Range"].startswith("bytes 0-")
    if response.status_code not in (200, 302):
        return False
    if response.status_code == 200 and not response.has_header("X-Accel-Redirect"):
        return True  # Wharf sends the whole file
    # The bucket or nginx answers the Range header, if any.
    header = request.META.get("HTTP_RANGE", "").replace(" ", "")
    return not header or header.startswith("bytes=0-")


def count(channel_id, subdir, filename):
    """Count one download of a package file, today (UTC)."""
    today = timezone.now().date()
    if not settings.REDIS_URL:
        try:
            _add(today, {(channel_id, subdir, filename): 1})
        except DatabaseError:
            LOST.inc()
            log.warning("download of %s/%s not counted", subdir, filename, exc_info=True)
        return
    global _redis_down_until
    if time.monotonic() < _redis_down_until:
        LOST.inc()
        return
    try:
        _redis().hincrby(DAY_PREFIX + today.isoformat(), _field(channel_id, subdir, filename))
    except Exception:
        _redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
        LOST.inc()
        log.warning("download of %s/%s not counted: Redis failed", subdir, filename, exc_info=True)


def _add(day, counts):
    """Add {(channel id, subdir, filename): downloads} to the day's rows."""
    table = DailyDownloads._meta.db_table
    rows = []
    for (channel_id, subdir, filename), downloads in counts.items():
        try:
            name, version = name_and_version(filename)
        except ValueError:
            continue  # every stored file name has the form; a hand-made key may not
        rows.append((channel_id, subdir, filename, name, version, day, downloads))
    if not rows:
        return
    # Both SQLite and PostgreSQL add to an existing row with ON CONFLICT.
    sql = (
        f"INSERT INTO {table} (channel_id, subdir, filename, name, version, day, downloads) "  # noqa: S608
        "VALUES (%s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (channel_id, subdir, filename, day) "
        f"DO UPDATE SET downloads = {table}.downloads + excluded.downloads"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def flush():
    """Move the counts buffered in Redis into the database; return the downloads moved.

    Safe to run at any time, also twice at once and after a flush that died: day hashes
    are renamed to batches before being read, and a batch is deleted from Redis only
    after the transaction that added it (and recorded its key) committed.
    """
    if not settings.REDIS_URL:
        return 0
    client = _redis()
    for key in client.scan_iter(match=DAY_PREFIX + "*"):
        day = key.decode().removeprefix(DAY_PREFIX)
        try:
            client.rename(key, f"{BATCH_PREFIX}{day}:{uuid.uuid4().hex}")
        except Exception as exc:
            if "no such key" not in str(exc).lower():
                raise  # else another flush renamed it first
    moved = 0
    for key in client.scan_iter(match=BATCH_PREFIX + "*"):
        moved += _apply_batch(client, key.decode())
    DownloadBatch.objects.filter(
        applied_at__lt=timezone.now() - timedelta(days=BATCHES_KEPT_DAYS)
    ).delete()
    return moved


def _apply_batch(client, key):
    day = date.fromisoformat(key.removeprefix(BATCH_PREFIX).split(":")[0])
    counts = {}
    for field, value in client.hgetall(key).items():
        channel_id, subdir, filename = field.decode().split("/", 2)
        counts[(int(channel_id), subdir, filename)] = int(value)
    try:
        with transaction.atomic():
            DownloadBatch.objects.create(key=key)
            _add(day, _existing_channels(counts))
    except IntegrityError:
        counts = {}  # added before, by a flush that died before deleting it
    client.delete(key)
    return sum(counts.values())


def _existing_channels(counts):
    """The counts of channels that still exist (a deleted channel's are dropped)."""
    from channels_app.models import Channel

    ids = set(Channel.objects.filter(pk__in={k[0] for k in counts}).values_list("pk", flat=True))
    return {key: value for key, value in counts.items() if key[0] in ids}


# -- the numbers pages and the API show -------------------------------------------------


def days_of(raw):
    """The ``days`` query parameter: how many days back a per-day series reaches."""
    if raw in (None, ""):
        return DEFAULT_DAYS
    try:
        days = int(raw)
    except ValueError:
        days = 0
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"'days' must be a whole number from 1 to {MAX_DAYS}, not '{raw}'.")
    return days


def _per_day(rows, days):
    """Every day of the last ``days`` (today included) with its downloads, 0 if none."""
    today = timezone.now().date()
    first = today - timedelta(days=days - 1)
    found = dict(rows.filter(day__gte=first).values_list("day").annotate(total=Sum("downloads")))
    return [
        {"day": first + timedelta(days=i), "downloads": found.get(first + timedelta(days=i), 0)}
        for i in range(days)
    ]


def _per_day_by(rows, field, days):
    """{value of ``field``: downloads of each day of the last ``days``}, largest first."""
    first = timezone.now().date() - timedelta(days=days - 1)
    series = {}
    found = rows.filter(day__gte=first).values_list(field, "day").annotate(Sum("downloads"))
    for key, day, downloads in found:
        series.setdefault(key, [0] * days)[(day - first).days] += downloads
    return dict(sorted(series.items(), key=lambda item: (-sum(item[1]), item[0])))


def _grouped(rows, field):
    totals = rows.values_list(field).annotate(total=Sum("downloads")).order_by("-total", field)
    return [{field: key, "downloads": total} for key, total in totals]


def total(rows):
    return rows.aggregate(total=Sum("downloads"))["total"] or 0


def package_statistics(channel, name, days=DEFAULT_DAYS):
    rows = DailyDownloads.objects.filter(channel=channel, name=name)
    return {
        "channel": channel.name,
        "name": name,
        "downloads": total(rows),
        "per_version": _grouped(rows, "version"),
        "per_platform": _grouped(rows, "subdir"),
        "per_day": _per_day(rows, days),
        # Each list has one number per day of per_day.
        "per_version_per_day": _per_day_by(rows, "version", days),
        "per_platform_per_day": _per_day_by(rows, "subdir", days),
    }


def channel_statistics(channel, days=DEFAULT_DAYS, top=10):
    rows = DailyDownloads.objects.filter(channel=channel)
    files = PackageFile.objects.filter(channel=channel).aggregate(
        storage=Sum("size"), count=Count("pk")
    )
    return {
        "channel": channel.name,
        "downloads": total(rows),
        "storage_bytes": files["storage"] or 0,
        "file_count": files["count"],
        "top_packages": _grouped(rows, "name")[:top],
        "per_day": _per_day(rows, days),
    }


def package_totals(channel, names):
    """{package name: downloads} of these packages of a channel, for lists."""
    rows = DailyDownloads.objects.filter(channel=channel, name__in=names)
    return dict(rows.values_list("name").annotate(total=Sum("downloads")))


def bars(series, key="downloads", height=120):
    """A series with each bar's height (in SVG units) and position, for the chart."""
    most = max((item[key] for item in series), default=0) or 1
    width = 100 / max(len(series), 1)
    return [
        {
            **item,
            "x": round(i * width, 3),
            "width": round(width * 0.8, 3),
            "height": round(item[key] / most * height, 2),
            "y": round(height - item[key] / most * height, 2),
            "share": round(item[key] / most * 100, 1),
        }
        for i, item in enumerate(series)
    ]


# Series colours of the stacked charts (the style sheet's accent, ok, warn, danger, ...).
PALETTE = ("#0b5cad", "#1e7a3c", "#8a5a00", "#b3261e", "#6b3fa0", "#00838f", "#5b6776")


def stacked(per_day, series, top=6, height=120):
    """Bars of ``per_day`` split by ``series`` (the largest ``top``, then the rest as
    "others"): a legend and, per day, its segments' positions, for the chart."""
    keys = list(series)
    lines = {key: series[key] for key in keys[:top]}
    if keys[top:]:
        lines["others"] = [sum(series[key][i] for key in keys[top:]) for i in range(len(per_day))]
    colors = dict(zip(lines, PALETTE, strict=False))
    most = max((day["downloads"] for day in per_day), default=0) or 1
    width = 100 / max(len(per_day), 1)
    columns = []
    for i, day in enumerate(per_day):
        y, segments = height, []
        for key, line in lines.items():
            if line[i]:
                size = line[i] / most * height
                y -= size
                segments.append(
                    {"key": key, "downloads": line[i], "y": round(y, 2),
                     "height": round(size, 2), "color": colors[key]}
                )  # fmt: skip
        columns.append(
            {**day, "x": round(i * width, 3), "width": round(width * 0.8, 3), "segments": segments}
        )
    legend = [{"key": key, "color": colors[key], "downloads": sum(lines[key])} for key in lines]
    return {"legend": legend, "columns": columns}


def for_page(numbers):
    """The numbers with bar sizes added for the server-rendered charts (no script)."""
    charted = dict(numbers)
    charted["per_day"] = bars(numbers["per_day"])
    for key in ("per_version", "per_platform", "top_packages"):
        if key in numbers:
            charted[key] = bars(numbers[key])
    for key in ("per_version_per_day", "per_platform_per_day"):
        if key in numbers:
            charted[key] = stacked(numbers["per_day"], numbers[key])
    charted["busiest_day"] = max((d["downloads"] for d in numbers["per_day"]), default=0)
    return charted
