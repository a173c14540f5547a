"""Download statistics: what counts as a download, the Redis buffer and its flush (through
gunicorn, a Celery worker and beat), parallel downloads, Redis down, the API and the pages.
"""

import datetime
import re
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from urllib.error import HTTPError

import pytest
import redis
from django.test import Client
from django.utils import timezone

from packages_app.conda import statistics
from packages_app.models import DailyDownloads, DownloadBatch, PackageFile

from ..packages import eventually, upload, wait_for_index

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def no_counts_left():
    """Counts buffered by an earlier test in the tests' Redis never reach this one."""
    statistics._redis.cache_clear()
    statistics._redis_down_until = 0.0
    if statistics.settings.REDIS_URL:
        statistics.flush()
    DailyDownloads.objects.all().delete()
    yield
    statistics._redis.cache_clear()


def counted(channel, filename=None):
    """Downloads recorded in the database, after moving what Redis buffers."""
    statistics.flush()
    rows = DailyDownloads.objects.filter(channel=channel)
    if filename:
        rows = rows.filter(filename=filename)
    return statistics.total(rows)


@pytest.fixture
def uploaded(client_for, public_channel, packages):
    path = packages.make("counted", "1.0")
    assert upload(client_for("owner"), public_channel.name, path).status_code == 201
    wait_for_index(public_channel, "noarch")
    return f"/{public_channel.name}/noarch/{path.name}"


def test_it_counts_whole_downloads_and_ranges_from_the_first_byte_only(uploaded, public_channel):
    client = Client()
    whole = client.get(uploaded)
    assert whole.status_code == 200
    etag = whole["ETag"]
    assert client.head(uploaded).status_code == 200
    assert client.get(uploaded, headers={"If-None-Match": etag}).status_code == 304
    assert client.get(uploaded, headers={"Range": "bytes=0-99"}).status_code == 206
    assert client.get(uploaded, headers={"Range": "bytes=100-"}).status_code == 206
    assert client.get(uploaded, headers={"Range": "bytes=-10"}).status_code == 206
    index = f"/{public_channel.name}/noarch/repodata.json"
    assert client.get(index).status_code == 200
    assert client.get(uploaded.replace("counted", "missing")).status_code == 404

    assert counted(public_channel) == 2  # the whole file and the range from byte 0
    row = DailyDownloads.objects.get(channel=public_channel)
    assert (row.subdir, row.name, row.version, row.day) == (
        "noarch",
        "counted",
        "1.0",
        timezone.now().date(),
    )


def test_behind_nginx_a_range_that_starts_later_does_not_count(uploaded, public_channel, settings):
    settings.WHARF_ACCEL_REDIRECT_PREFIX = "/_stored/"
    client = Client()
    for headers in ({}, {"Range": "bytes=0-10"}, {"Range": "bytes=100-"}, {"Range": "bytes=-5"}):
        response = client.get(uploaded, headers=headers)
        assert response.status_code == 200 and response["X-Accel-Redirect"]
    assert counted(public_channel) == 2


def test_a_deleted_file_keeps_its_counts_and_a_deleted_channel_drops_them(
    uploaded, public_channel, client_for
):
    assert Client().get(uploaded).status_code == 200
    filename = uploaded.rsplit("/", 1)[1]
    owner = client_for("owner")
    assert (
        owner.delete(f"/api/v1/delete/{public_channel.name}/noarch/{filename}").status_code == 204
    )
    assert counted(public_channel, filename) == 1
    public_channel.delete()
    assert not DailyDownloads.objects.exists()


# -- services mode: Redis, gunicorn, a Celery worker and beat ------------------------------


def fetch(url, method="GET"):
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except HTTPError as error:
        return error.code, error.read()


def test_parallel_downloads_are_counted_exactly_through_beat_flushes(
    processes, uploaded, public_channel
):
    port = processes.redis().port
    env = {"REDIS_URL": f"redis://127.0.0.1:{port}/0", "WHARF_STATS_FLUSH_SECONDS": "1"}
    server = processes.gunicorn(env)
    processes.worker("worker", env)
    processes.beat(env)
    rounds, per_round, downloads = 5, 100, 500
    statuses = []
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        for _ in range(rounds):  # spread over several flushes
            statuses += pool.map(lambda _: fetch(server + uploaded)[0], range(per_round))
            time.sleep(0.7)
    seconds = time.monotonic() - started
    print(f"{downloads} parallel downloads in {rounds} rounds over {seconds:.2f} s")
    assert statuses == [200] * downloads
    assert fetch(server + uploaded, "HEAD")[0] == 200

    rows = DailyDownloads.objects.filter(channel=public_channel)

    def all_flushed():
        assert statistics.total(rows) == downloads

    eventually(all_flushed, timeout=60)
    assert DownloadBatch.objects.count() >= 2  # beat's flushes moved them, in batches
    time.sleep(2.5)  # more flushes find nothing new: nothing is counted twice
    assert statistics.total(rows) == downloads
    assert not redis.Redis(port=port).keys("wharf:downloads:*")


def test_a_flush_that_died_is_finished_by_the_next_without_counting_twice(
    processes, settings, uploaded, public_channel
):
    port = processes.redis().port
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    statistics._redis.cache_clear()
    client = Client()
    for _ in range(3):
        assert client.get(uploaded).status_code == 200
    buffer = redis.Redis(port=port)
    field = f"{public_channel.pk}/noarch/{uploaded.rsplit('/', 1)[1]}"
    day = timezone.now().date().isoformat()
    assert int(buffer.hget(statistics.DAY_PREFIX + day, field)) == 3
    # One flush renamed the day's hash and died; another added its batch and died before
    # deleting it from Redis.
    buffer.rename(statistics.DAY_PREFIX + day, f"{statistics.BATCH_PREFIX}{day}:renamed")
    applied = f"{statistics.BATCH_PREFIX}{day}:applied"
    buffer.hset(applied, field, 5)
    DownloadBatch.objects.create(key=applied)
    DailyDownloads.objects.create(
        channel=public_channel, subdir="noarch", filename=field.split("/")[2], name="counted",
        version="1.0", day=timezone.now().date(), downloads=5,
    )  # fmt: skip
    assert client.get(uploaded).status_code == 200  # a new day hash meanwhile

    assert statistics.flush() == 4
    assert counted(public_channel) == 5 + 3 + 1
    assert not buffer.keys("wharf:downloads:*")


def test_downloads_succeed_while_redis_is_down_and_the_loss_is_counted(
    processes, uploaded, public_channel
):
    redis_process = processes.redis()
    env = {"REDIS_URL": f"redis://127.0.0.1:{redis_process.port}/0", "WHARF_CACHE_URL": ""}
    server = processes.gunicorn(env)
    assert fetch(server + uploaded)[0] == 200
    processes.kill(redis_process)
    started = time.monotonic()
    statuses = [fetch(server + uploaded)[0] for _ in range(20)]
    seconds = time.monotonic() - started
    print(f"20 downloads with Redis down in {seconds:.2f} s")
    assert statuses == [200] * 20
    assert seconds < 10
    status, metrics = fetch(server + "/metrics")
    assert status == 200
    lost = [
        float(line.split()[-1])
        for line in metrics.decode().splitlines()
        if line.startswith("wharf_download_counts_lost_total")
    ]
    assert lost and sum(lost) == 20


# -- what the API and the pages show ---------------------------------------------------------


@pytest.fixture
def history(public_channel, packages, client_for):
    """Two versions on two platforms with downloads on two days, a file of another package."""
    owner = client_for("owner")
    for name, version, subdir in (
        ("tool", "1.0", "noarch"),
        ("tool", "2.0", "linux-64"),
        ("other", "1.0", "noarch"),
    ):
        assert (
            upload(owner, public_channel.name, packages.make(name, version, subdir)).status_code
            == 201
        )
    today = timezone.now().date()
    yesterday = today - datetime.timedelta(days=1)
    files = {f.filename.split("-")[0] + f.version: f for f in PackageFile.objects.all()}
    for key, day, downloads in (
        ("tool1.0", yesterday, 4),
        ("tool1.0", today, 1),
        ("tool2.0", today, 7),
        ("other1.0", today, 2),
    ):
        f = files[key]
        statistics._add(day, {(public_channel.pk, f.subdir, f.filename): downloads})
    return today, yesterday


def test_the_api_gives_channel_and_package_numbers(history, public_channel, client_for):
    today, yesterday = history
    member = client_for("member")
    base = f"/api/v1/channels/{public_channel.name}"
    channel = client_for("owner").get(f"{base}/statistics/?days=2").json()
    sizes = [f.size for f in PackageFile.objects.filter(channel=public_channel)]
    assert channel["downloads"] == 14
    assert channel["file_count"] == 3
    assert channel["storage_bytes"] == sum(sizes)
    assert channel["top_packages"] == [
        {"name": "tool", "downloads": 12},
        {"name": "other", "downloads": 2},
    ]
    assert channel["per_day"] == [
        {"day": yesterday.isoformat(), "downloads": 4},
        {"day": today.isoformat(), "downloads": 10},
    ]
    package = member.get(f"{base}/packages/tool/statistics/").json()
    assert package["downloads"] == 12
    assert package["per_version"] == [
        {"version": "2.0", "downloads": 7},
        {"version": "1.0", "downloads": 5},
    ]
    assert package["per_platform"] == [
        {"subdir": "linux-64", "downloads": 7},
        {"subdir": "noarch", "downloads": 5},
    ]
    assert len(package["per_day"]) == 30 and package["per_day"][-1]["downloads"] == 8
    assert package["per_version_per_day"] == {"2.0": [0] * 29 + [7], "1.0": [0] * 28 + [4, 1]}
    assert package["per_platform_per_day"] == {
        "linux-64": [0] * 29 + [7],
        "noarch": [0] * 28 + [4, 1],
    }

    listed = member.get(f"{base}/packages/").json()["results"]
    assert {p["name"]: p["downloads"] for p in listed} == {"other": 2, "tool": 12}
    assert member.get(f"{base}/packages/tool/").json()["downloads"] == 12

    bad = client_for("owner").get(f"{base}/statistics/?days=0")
    assert bad.status_code == 400 and "'days' must be a whole number" in bad.json()["days"][0]
    missing = member.get(f"{base}/packages/nothing/statistics/")
    assert missing.status_code == 404 and "No package 'nothing'" in missing.json()["detail"]


def test_the_package_page_charts_downloads_per_day_version_and_platform(
    history, public_channel, users
):
    today, yesterday = history
    client = Client()
    client.force_login(users["member"])
    page = client.get(f"/{public_channel.name}/packages/tool/").content.decode()
    assert "<strong data-downloads-total>12</strong>" in page
    assert page.count('<svg class="download-chart stacked"') == 2
    assert f"<title>{yesterday.isoformat()}: 4</title>" in page
    assert f"<title>{today.isoformat()}: 8</title>" in page
    assert f"<title>{today.isoformat()}, 2.0: 7</title>" in page
    assert f"<title>{today.isoformat()}, 1.0: 1</title>" in page
    assert f"<title>{today.isoformat()}, linux-64: 7</title>" in page
    assert "</svg> 2.0 (7)</span>" in page and "</svg> noarch (5)</span>" in page
    assert '<th scope="row">2.0</th>\n      <td class="num">7</td>' in page
    assert '<th scope="row">linux-64</th>\n      <td class="num">7</td>' in page
    assert "<script" not in page.split('id="downloads"')[1].split("</section>")[0]


def test_the_statistics_page_shows_top_packages_storage_and_files(history, public_channel, users):
    client = Client()
    client.force_login(users["owner"])
    channel_page = client.get(f"/{public_channel.name}/").content.decode()
    assert f'href="/{public_channel.name}/statistics/"' in channel_page
    page = client.get(f"/{public_channel.name}/statistics/").content.decode()
    storage = sum(f.size for f in PackageFile.objects.filter(channel=public_channel))
    assert "<dd data-downloads-total>14</dd>" in page
    assert "<dd data-file-count>3</dd>" in page
    assert f'data-storage-bytes="{storage}"' in page
    top = page.split("Top packages")[1]
    assert top.index(">tool</a>") < top.index(">other</a>")


def test_private_statistics_are_hidden_from_outsiders(private_channel, client_for, users):
    outsider = client_for("outsider")
    for path in ("statistics/", "packages/x/statistics/"):
        hidden = outsider.get(f"/api/v1/channels/{private_channel.name}/{path}")
        missing = outsider.get(f"/api/v1/channels/no-such-channel/{path}")
        assert hidden.status_code == missing.status_code == 404
    assert (
        client_for("owner").get(f"/api/v1/channels/{private_channel.name}/statistics/").status_code
        == 200
    )


def test_channel_statistics_are_for_owners(history, public_channel, client_for, users):
    """Readers see each package's numbers, only owners the channel's (page, tab and API)."""
    api = f"/api/v1/channels/{public_channel.name}/statistics/"
    for role in ("maintainer", "member", "outsider"):
        answer = client_for(role).get(api)
        assert answer.status_code == 403, role
        assert "You may not manage in channel" in answer.json()["detail"]
        client = Client()
        client.force_login(users[role])
        assert client.get(f"/{public_channel.name}/statistics/").status_code == 403
        page = client.get(f"/{public_channel.name}/").content.decode()
        assert f'href="/{public_channel.name}/statistics/"' not in page
        package = client_for(role).get(
            f"/api/v1/channels/{public_channel.name}/packages/tool/statistics/"
        )
        assert package.status_code == 200 and package.json()["downloads"] == 12
    assert Client().get(f"/{public_channel.name}/statistics/").status_code == 404
    assert client_for("owner").get(api).json()["downloads"] == 14


def test_the_version_chart_groups_the_least_downloaded_versions_as_others(
    public_channel, packages, client_for, users
):
    owner = client_for("owner")
    today = timezone.now().date()
    for minor in range(8):
        path = packages.make("many", f"1.{minor}")
        assert upload(owner, public_channel.name, path).status_code == 201
        statistics._add(today, {(public_channel.pk, "noarch", path.name): 10 + minor})
    client = Client()
    client.force_login(users["member"])
    page = client.get(f"/{public_channel.name}/packages/many/").content.decode()
    chart = page.split('id="downloads-by-version-title"')[1].split("</p>")[0]
    shown = re.findall(r"</svg> ([^ ]+) \((\d+)\)</span>", chart)
    assert shown == [("1.7", "17"), ("1.6", "16"), ("1.5", "15"), ("1.4", "14"),
                     ("1.3", "13"), ("1.2", "12"), ("others", "21")]  # fmt: skip
