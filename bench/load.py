"""Load: many concurrent conda clients and uploaders against the services mode.

    python -m bench.load [--clients 100] [--seconds 60] [--records 10000] [--no-write]

Two channels in one linux-64 subdir: a private one with ``records`` package records, read
with a member's read-only token, and a public one with half as many, read anonymously.
Wharf runs as in production: gunicorn (4 workers x 8 threads), 2 Celery workers, PostgreSQL
(database ``wharf_bench_load``) and Redis (database 8).

``clients`` clients each hold one keep-alive connection and send requests back to back for
``seconds``, every one drawn from :data:`MIX` for a channel drawn at random. Uploads are new
packages built beforehand (``common.packages``), sent by the owner's token as rattler-build
sends them. Afterwards every upload answered 201 must appear in its channel's repodata.json;
the time until they all do is the index's settling time.

The clients are coroutines on one asyncio loop speaking HTTP/1.1 themselves, so that the
load generator costs the server as little CPU as possible; the CPU each part used is
reported, with the loop's lag, to tell whether the generator limited the measurement.

``make bench BENCH=load`` runs it; BENCH_LOAD_CLIENTS and BENCH_LOAD_SECONDS shorten it.
"""

import argparse
import asyncio
import collections
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import msgpack
import orjson
import zstandard

from . import common, servers

DATABASE = "postgres://postgres@127.0.0.1:5432/wharf_bench_load"
REDIS = "redis://127.0.0.1:6379/8"
SUBDIR = "linux-64"
CLIENTS = 100
SECONDS = 60
RECORDS = 10000
# New packages for the uploads; more than the upload benchmark's 60 s accept (about 3,500).
UPLOAD_POOL = 6000
WEB_WORKERS, WEB_THREADS, CELERY_WORKERS = 4, 8, 2
REQUEST_TIMEOUT = 60

# Kind of request -> share of requests in percent: 60 % index files, 30 % package
# downloads, 10 % uploads.
MIX = {
    "repodata.json.zst": 15,
    "repodata.json.zst + If-None-Match": 15,
    "shard index": 10,
    "shard": 15,
    "repodata.json": 5,
    "package": 30,
    "upload": 10,
}
EXPECTED = {"repodata.json.zst + If-None-Match": {200, 304}, "upload": {201}}


# -- the client ------------------------------------------------------------------------


class ServerClosed(Exception):
    """The server closed a kept-alive connection before answering (it may, when idle)."""


class Connection:
    """One keep-alive HTTP/1.1 connection, as little Python per request as will do."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.reader = self.writer = None
        self.retries = 0  # requests sent again after the server closed an idle connection

    async def request(self, method, target, headers=(), body=b"", keep=False):
        """(status, response headers, body if ``keep`` else b"", body size)."""
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}", *headers]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        message = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        reused = self.writer is not None
        try:
            try:
                return await self._exchange(method, message, keep)
            except ServerClosed:
                if not reused:
                    raise
                self.close()
                self.retries += 1
                return await self._exchange(method, message, keep)
        except BaseException:
            self.close()
            raise

    async def _exchange(self, method, message, keep):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                self.host, self.port, limit=1024 * 1024
            )
        try:
            self.writer.write(message)
            await self.writer.drain()
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                raise
            raise ServerClosed from exc
        lines = head.decode("latin-1").split("\r\n")
        version, status = lines[0].split(" ", 2)[:2]
        status = int(status)
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if method == "HEAD" or status in (204, 304) or status < 200:
            data, size = b"", 0
        elif "content-length" in headers:
            data, size = await self._read(int(headers["content-length"]), keep)
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            data = await self._chunked()
            size = len(data)
        else:
            data = await self.reader.read()
            size = len(data)
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close" or version == "HTTP/1.0":
            self.close()
        return status, headers, data if keep else b"", size

    async def _read(self, length, keep):
        if keep:
            return await self.reader.readexactly(length), length
        remaining = length
        while remaining:
            chunk = await self.reader.read(min(remaining, 1024 * 1024))
            if not chunk:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(chunk)
        return b"", length

    async def _chunked(self):
        parts = []
        while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)
        while await self.reader.readuntil(b"\r\n") != b"\r\n":
            pass  # trailers
        return b"".join(parts)

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


# -- what the clients know -------------------------------------------------------------


class ChannelState:
    """One channel as the clients see it: credentials, files, latest ETag and shards."""

    def __init__(self, name, private, read_token, upload_token, filenames):
        self.name, self.private = name, private
        self.read_token = read_token
        self.read_headers = [f"Authorization: Bearer {read_token}"] if read_token else []
        self.upload_token = upload_token
        self.filenames = filenames
        self.zst_etag = None
        self.shard_index_etag = None
        self.shards = []  # hex digests of the latest shard index seen
        self.accepted = []  # filenames whose upload was answered 201

    def path(self, name):
        return f"/{self.name}/{SUBDIR}/{name}"

    def learn_shard_index(self, etag, data):
        if etag == self.shard_index_etag:
            return
        document = msgpack.unpackb(zstandard.ZstdDecompressor().stream_reader(data).read())
        self.shards = [digest.hex() for digest in document["shards"].values()]
        self.shard_index_etag = etag


async def one_request(connection, kind, channel, uploads, rng):
    """Send one request of ``kind``; (status, body size)."""
    if kind == "upload":
        path = next(uploads, None)
        if path is None:
            return "pool exhausted", 0
        content_type, body = servers.upload_body(path)
        headers = [f"Authorization: Bearer {channel.upload_token}", f"Content-Type: {content_type}"]
        status, _, _, size = await connection.request(
            "POST", f"/api/v1/upload/{channel.name}", headers, body
        )
        if status == 201:
            channel.accepted.append(path.name)
        return status, size + len(body)
    headers = channel.read_headers
    keep = False
    if kind == "repodata.json.zst":
        target = channel.path("repodata.json.zst")
    elif kind == "repodata.json.zst + If-None-Match":
        target = channel.path("repodata.json.zst")
        headers = [*headers, f"If-None-Match: {channel.zst_etag}"]
    elif kind == "shard index":
        target, keep = channel.path("repodata_shards.msgpack.zst"), True
    elif kind == "shard":
        target = channel.path(f"shards/{rng.choice(channel.shards)}.msgpack.zst")
    elif kind == "repodata.json":
        target = channel.path("repodata.json")
    else:
        target = channel.path(rng.choice(channel.filenames))
    status, response_headers, data, size = await connection.request(
        "GET", target, headers, keep=keep
    )
    if status == 200 and kind.startswith("repodata.json.zst"):
        channel.zst_etag = response_headers.get("etag", channel.zst_etag)
    elif status == 200 and kind == "shard index":
        channel.learn_shard_index(response_headers.get("etag"), io.BytesIO(data))
    return status, size


async def client(number, base, channels, uploads, stop_at, samples):
    rng = random.Random(number)
    host, port = base.removeprefix("http://").split(":")
    connection = Connection(host, int(port))
    kinds, weights = list(MIX), list(MIX.values())
    try:
        while time.monotonic() < stop_at:
            kind = rng.choices(kinds, weights)[0]
            channel = rng.choice(channels)
            started = time.monotonic()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    status, size = await one_request(connection, kind, channel, uploads, rng)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ServerClosed) as exc:
                status, size = f"error: {type(exc).__name__}", 0
                connection.close()
            samples.append((kind, channel.private, status, time.monotonic() - started, size))
    finally:
        connection.close()
    return connection.retries


async def loop_lag(stop_at, lags, period=0.05):
    """How late the loop wakes a sleeper: a busy generator delays every measurement."""
    while time.monotonic() < stop_at:
        started = time.monotonic()
        await asyncio.sleep(period)
        lags.append(time.monotonic() - started - period)


async def progress(stop_at, samples, started):
    while (left := stop_at - time.monotonic()) > 0:
        await asyncio.sleep(min(10, left))
        errors = sum(1 for s in samples if isinstance(s[2], str) or s[2] >= 500)
        print(f"  {time.monotonic() - started:4.0f} s: {len(samples)} requests, "
              f"{errors} 5xx or errors", file=sys.stderr, flush=True)  # fmt: skip


async def generate(base, channels, uploads, clients, seconds, meter):
    samples, lags = [], []
    started = time.monotonic()
    stop_at = started + seconds
    *retries, _, _, _ = await asyncio.gather(
        *(client(n, base, channels, uploads, stop_at, samples) for n in range(clients)),
        loop_lag(stop_at, lags),
        progress(stop_at, samples, started),
        meter.sample_until(stop_at),
    )
    return samples, lags, sum(retries), time.monotonic() - started


# -- CPU accounting --------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")
CPU_PARTS = {
    "generator": "load generator (this process, one asyncio loop)",
    "gunicorn": f"gunicorn ({WEB_WORKERS} workers)",
    "celery": f"Celery ({CELERY_WORKERS} workers)",
    "postgres-bench": "PostgreSQL, connections to this benchmark's database",
    "postgres-other": "PostgreSQL, other databases and background processes",
    "redis": "Redis",
    "other": "other processes (other people's tests, system)",
    "unattributed": "not attributed (interrupts, processes gone between samples)",
    "machine": "machine",
}


def _processes():
    """{pid: (ppid, argv, CPU seconds)} of every process now running."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found[int(entry.name)] = (int(fields[1]), argv, (int(fields[11]) + int(fields[12])) / TICK)
    return found


def _part(pid, processes, database):
    """Which of :data:`CPU_PARTS` a process belongs to."""
    if pid == os.getpid():
        return "generator"
    ancestor = processes[pid][0]
    while ancestor > 1 and ancestor != os.getpid():
        ancestor = processes.get(ancestor, (1,))[0]
    argv = processes[pid][1]
    if ancestor == os.getpid():
        return "gunicorn" if "gunicorn" in argv else "celery" if "celery" in argv else "other"
    if argv.startswith("postgres:") or "/postgres " in argv:
        return "postgres-bench" if f" {database} " in argv else "postgres-other"
    return "redis" if argv.startswith("redis-server") else "other"


def _machine_busy():
    """Busy CPU seconds of all cores since boot."""
    with open("/proc/stat") as stat:
        ticks = [int(x) for x in stat.readline().split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / TICK


class CpuMeter:
    """CPU seconds each part used during the load, from /proc.

    Processes are sampled every second, so that one that exits meanwhile (a PostgreSQL
    backend whose connection reached CONN_MAX_AGE, say) still counts up to its last sample.
    """

    def __init__(self, database):
        self.database = database
        self.first = self.last = {}
        self.machine = 0.0

    def start(self):
        self.first = self.last = _processes()
        self.machine = _machine_busy()

    def sample(self):
        self.last = {**self.last, **_processes()}

    async def sample_until(self, stop_at):
        while time.monotonic() < stop_at:
            self.sample()
            await asyncio.sleep(1)

    def stop(self):
        """({part: CPU seconds}, the three busiest "other" processes)."""
        self.sample()
        parts = dict.fromkeys(CPU_PARTS, 0.0)
        others = collections.Counter()
        for pid, (_, argv, seconds) in self.last.items():
            if pid in self.first and self.first[pid][1] == argv:
                seconds -= self.first[pid][2]
            part = _part(pid, self.last, self.database)
            parts[part] += seconds
            if part == "other" and argv:  # kernel threads have no command line
                others[argv[:100]] += seconds
        machine = _machine_busy() - self.machine
        parts["unattributed"] = machine - sum(parts.values())
        parts["machine"] = machine
        return parts, [(argv, round(t, 1)) for argv, t in others.most_common(3) if t >= 1]


# -- set-up, run, checks ---------------------------------------------------------------


def populate(records):
    """The two channels, their users and tokens; returns ChannelStates and upload files."""
    from accounts.models import ApiToken, User
    from channels_app import members
    from channels_app.lifecycle import create_channel
    from packages_app.index import rebuilds
    from packages_app.intake import importing

    files = common.packages(records + UPLOAD_POOL)
    seeded, pool = files[:records], files[records:]
    owner = User.objects.create_user("owner", "owner@example.org", None)
    reader = User.objects.create_user("reader", "reader@example.org", None)
    upload_token = ApiToken.create_for(owner, "ci")[1]
    read_token = ApiToken.create_for(reader, "laptop", read_only=True)[1]
    states = []
    for name, private, chosen in (("load-private", True, seeded),
                                  ("load-public", False, seeded[: records // 2])):  # fmt: skip
        channel = create_channel(owner, name, private=private)
        if private:
            members.add(channel, reader)
        result = importing.import_files(channel, chosen, uploader=owner)
        if result.refused:
            raise RuntimeError(f"refused: {result.refused[:3]}")
        rebuilds.rebuild_until_current(channel.pk, SUBDIR)
        reads_with = read_token if private else None
        states.append(
            ChannelState(name, private, reads_with, upload_token, [p.name for p in chosen])
        )
    return states, pool


def prime(base, states):
    """What a client knows before the run: the current ETag and shard index."""
    for state in states:
        token = state.read_token
        _, headers, _ = _get(base, state.path("repodata.json.zst"), token)
        state.zst_etag = headers["ETag"]
        _, headers, data = _get(base, state.path("repodata_shards.msgpack.zst"), token)
        state.learn_shard_index(headers["ETag"], io.BytesIO(data))


def _get(base, path, token):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(base + path, headers=headers)
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.status, response.headers, response.read()


def settle(base, states, deadline=300):
    """Seconds until every accepted upload is in its channel's repodata.json; the missing."""
    started = time.monotonic()
    waiting = {state.name: set(state.accepted) for state in states}
    while True:
        for state in states:
            if waiting[state.name]:
                _, _, data = _get(base, state.path("repodata.json"), state.read_token)
                waiting[state.name] -= set(orjson.loads(data)["packages.conda"])
        missing = sorted(name for names in waiting.values() for name in names)
        if not missing or time.monotonic() - started > deadline:
            return time.monotonic() - started, missing
        time.sleep(0.1)


WORRYING = re.compile(r"Internal Server Error|ERROR|CRITICAL|WORKER TIMEOUT|exited|Killed")


def scan_logs(logs):
    """5xx lines of the access log; worrying lines of the others, each traceback by the
    exception it ends with."""
    access = (logs / "access.log").read_text().splitlines()
    server_errors = [line for line in access if re.search(r" 5\d\d ", line)]
    problems = {}
    for log in sorted(logs.glob("*.log")):
        if log.name == "access.log":
            continue
        lines = log.read_text().splitlines()
        found = []
        for number, line in enumerate(lines):
            if WORRYING.search(line):
                found.append(line)
            elif line.startswith("Traceback"):
                ending = (x for x in lines[number + 1 :] if x and not x.startswith(" "))
                found.append(next(ending, "(traceback without an ending)"))
        if found:
            problems[log.name] = found[:20]
    return len(access), server_errors[:20], len(server_errors), problems


def _latency(values):
    latency = {f"p{round(q * 100)}": common.percentile(values, q) for q in (0.5, 0.9, 0.99)}
    return {**latency, "max": max(values, default=float("nan"))}


def summarize(samples, elapsed):
    by = collections.defaultdict(list)
    for kind, private, status, seconds, size in samples:
        by[kind].append((status, seconds, size))
        by["all"].append((status, seconds, size))
        by["private channel" if private else "public channel"].append((status, seconds, size))
    rows = {}
    for kind in [*MIX, "public channel", "private channel", "all"]:
        entries = by.get(kind, [])
        rows[kind] = {
            "requests": len(entries),
            "per_second": len(entries) / elapsed,
            "mib_per_second": sum(e[2] for e in entries) / elapsed / 1024**2,
            "statuses": dict(collections.Counter(str(e[0]) for e in entries).most_common()),
            **_latency([e[1] for e in entries]),
        }
    return rows


def measure(clients, seconds, records):
    """The whole run in this process (database and Redis database of its own)."""
    common.setup_django(REDIS_URL="")
    import redis
    from django.db.models import Sum

    from packages_app.models import PackageFile, SubdirIndex

    def rebuilds():
        return SubdirIndex.objects.filter(subdir=SUBDIR).aggregate(n=Sum("rebuild_count"))["n"]

    common.reset_database()
    redis.Redis.from_url(REDIS).flushdb()
    started = time.monotonic()
    states, pool = populate(records)
    print(f"  seeded in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    logs = common.BENCH_DIR / "logs-load"
    shutil.rmtree(logs, ignore_errors=True)  # gunicorn appends to its access log
    with servers.wharf(
        workers=WEB_WORKERS, threads=WEB_THREADS, celery_workers=CELERY_WORKERS,
        celery_concurrency=1, logs=logs, REDIS_URL=REDIS,
    ) as (base, _server):  # fmt: skip
        prime(base, states)
        rebuilds_before = rebuilds()
        meter = CpuMeter(common.database_url().rsplit("/", 1)[1])
        meter.start()
        samples, lags, retries, elapsed = asyncio.run(
            generate(base, states, iter(pool), clients, seconds, meter)
        )
        cpu, busiest_others = meter.stop()
        settle_seconds, missing = settle(base, states)
    accepted = [name for state in states for name in state.accepted]
    stored = PackageFile.objects.filter(filename__in=accepted).count()
    refused = [(s[2], s[0]) for s in samples if s[0] == "upload" and s[2] != 201]
    access_lines, server_error_lines, server_errors, problems = scan_logs(logs)
    return {
        "clients": clients,
        "seconds": seconds,
        "elapsed": elapsed,
        "records": {state.name: len(state.filenames) for state in states},
        "kinds": summarize(samples, elapsed),
        "uploads_accepted": len(accepted),
        "uploads_stored": stored,
        "uploads_missing": missing,
        "uploads_other": dict(collections.Counter(str(s) for s, _ in refused)),
        "settle_seconds": settle_seconds,
        "rebuilds": rebuilds() - rebuilds_before,
        "cpu": cpu,
        "busiest_others": busiest_others,
        "loop_lag": _latency(lags),
        "retries": retries,
        "access_log_requests": access_lines,
        "access_log_5xx": server_errors,
        "access_log_5xx_lines": server_error_lines,
        "log_problems": problems,
    }


# -- the report ------------------------------------------------------------------------


def _statuses(statuses, kind):
    expected = EXPECTED.get(kind, {200})
    if kind in ("public channel", "private channel", "all"):
        expected = {200, 201, 304}
    odd = {k: v for k, v in statuses.items() if not (k.isdigit() and int(k) in expected)}
    return ", ".join(f"{k}: {v}" for k, v in odd.items()) or "none"


def _code(status):
    """An answer's status code; 0 for a failure without one (connection error, timeout)."""
    return int(status) if status.isdigit() else 0


def _fine(status):
    return 200 <= _code(status) < 300 or _code(status) == 304


def _answers(statuses):
    return ", ".join(f"{k}: {v:,}" for k, v in statuses.items())


def write_report(report, result):
    kinds = result["kinds"]
    everything = kinds["all"]["statuses"]
    server_errors = sum(v for k, v in everything.items() if _code(k) >= 500)
    other = {k: v for k, v in everything.items() if not _fine(k) and _code(k) < 500}
    records = result["records"]
    report.table(
        f"Load: {result['clients']} clients for {result['seconds']} s, by kind of request",
        ["kind", "requests", "per second", "MiB/s", "p50", "p90", "p99", "max",
         "answers", "unexpected answers"],
        [[kind, f"{r['requests']:,}", f"{r['per_second']:.1f}", f"{r['mib_per_second']:.1f}",
          common.ms(r["p50"]), common.ms(r["p90"]), common.ms(r["p99"]), common.ms(r["max"]),
          _answers(r["statuses"]), _statuses(r["statuses"], kind)]
         for kind, r in kinds.items()],
        note=(
            f"Services mode: gunicorn {WEB_WORKERS} workers x {WEB_THREADS} threads (gthread), "
            f"{CELERY_WORKERS} Celery worker processes, PostgreSQL, Redis, all on the same 2 "
            f"cores as the load generator. Channels: `load-private` ({records['load-private']:,} "
            f"linux-64 records, read with a member's read-only token) and `load-public` "
            f"({records['load-public']:,}, anonymous reads); each request picks one at random. "
            f"{result['clients']} clients, each with one keep-alive connection, send requests "
            "back to back: " + ", ".join(f"{share} % {kind}" for kind, share in MIX.items())
            + ". If-None-Match carries the newest ETag any client saw (304 unless an upload "
            "changed the index since); shards are picked from the newest shard index seen; "
            "packages from the seeded files; uploads are new packages (multipart, as "
            "rattler-build sends them) by the owner's token. Latency: from sending the request "
            "to the last byte of the answer, reconnection included."
        ),
    )  # fmt: skip
    lost = len(result["uploads_missing"])
    report.table(
        "Load: errors and uploads",
        ["5xx", "other answers not 2xx/304", "access log 5xx", "uploads answered 201",
         "stored", "in repodata.json after settling", "lost", "uploads answered otherwise",
         "index settled after the load", "index rebuilds"],
        [[server_errors, ", ".join(f"{k}: {v}" for k, v in other.items()) or "none",
          result["access_log_5xx"], result["uploads_accepted"], result["uploads_stored"],
          result["uploads_accepted"] - lost, lost,
          ", ".join(f"{k}: {v}" for k, v in result["uploads_other"].items()) or "none",
          common.seconds(result["settle_seconds"]), result["rebuilds"]]],
        note=(
            "Targets: no 5xx, no lost upload (answered 201 but missing from repodata.json once "
            "the index has settled). Settling: from the end of the load until every accepted "
            "upload is in its channel's repodata.json. Index rebuilds: publications of the two "
            "linux-64 indexes during the load and the settling (each covers all uploads "
            "committed before it started)."
        ),
    )  # fmt: skip
    cpu, elapsed = result["cpu"], result["elapsed"]
    lag = result["loop_lag"]
    report.table(
        "Load: where the CPU went",
        ["part", "CPU seconds", "cores busy", "share of the 2 cores"],
        [[label, f"{cpu[part]:.1f}", f"{cpu[part] / elapsed:.2f}",
          f"{cpu[part] / elapsed / 2:.0%}"] for part, label in CPU_PARTS.items()],
        note=(
            f"Over the {elapsed:.1f} s of load, from /proc. The generator's event loop woke a "
            f"50 ms sleeper late by p50 {common.ms(lag['p50'])}, p99 {common.ms(lag['p99'])}, "
            f"max {common.ms(lag['max'])}: at most that much of a latency is the generator's "
            f"own. Requests sent again on a new connection after the server had closed an idle "
            f"one: {result['retries']}."
            + "".join(f" Busy other process: `{a}` ({t} s)." for a, t in result["busiest_others"])
        ),
    )  # fmt: skip
    if result["log_problems"] or result["access_log_5xx_lines"]:
        lines = [f"{name}: {line}" for name, found in result["log_problems"].items()
                 for line in found[:5]] + result["access_log_5xx_lines"][:5]  # fmt: skip
        report.text("Log lines worth reading:\n\n" + "\n".join(f"    {x}" for x in lines))


def _in_process(clients, seconds, records):
    env = {**os.environ, "WHARF_BENCH_DATABASE_URL": DATABASE, "WHARF_BENCH_REDIS_URL": REDIS}
    argv = [sys.executable, "-m", "bench.load", "--measure", "--clients", str(clients),
            "--seconds", str(seconds), "--records", str(records)]  # fmt: skip
    output = subprocess.run(argv, cwd=common.ROOT, env=env, check=True, stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    return json.loads(output.stdout.strip().splitlines()[-1])


def run(report, clients=None, seconds=None, records=RECORDS):
    clients = clients or int(os.environ.get("BENCH_LOAD_CLIENTS", CLIENTS))
    seconds = seconds or int(os.environ.get("BENCH_LOAD_SECONDS", SECONDS))
    result = _in_process(clients, seconds, records)
    write_report(report, result)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--seconds", type=int, default=SECONDS)
    parser.add_argument("--records", type=int, default=RECORDS, help="private channel size")
    parser.add_argument("--no-write", action="store_true", help=f"do not append to {common.REPORT}")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.clients, args.seconds, args.records)))
        return
    report = common.Report("Load")
    run(report, args.clients, args.seconds, args.records)
    if not args.no_write:
        report.write()


if __name__ == "__main__":
    main()
