"""Freshness as a client sees it: from an upload's 201 to the next command that resolves it.

    python -m bench.client_freshness [SIZE ...]       (default 1000 100000)

For each size a channel is loaded with that many records and served in services mode
(gunicorn, one Celery worker indexing, PostgreSQL, Redis), public, then made private. The
client is py-rattler with default settings: each "command" is a new Gateway solving one
package name with the same on-disk cache (``cache_dir``) as the commands before it, so it
reuses what the server's Cache-Control lets it reuse, as a new ``pixi`` process would.

After one upload that is not counted (the worker's first change loads the records), for
each upload: one command resolves the name (the cache is warm, as for someone who
used the channel a moment ago), a new version of that name is uploaded, and commands run
one after another until one resolves the new version; the time runs from the 201 to the
end of that command. A version not resolved within ``WINDOW`` seconds is counted "not
seen" (with ``max-age=300`` it would take up to 300 s).

Then the cost of those revalidations: req/s of 304 answers for repodata.json.zst and the
shard index, from Wharf directly and through nginx with X-Accel-Redirect, without and with
nginx's authorization cache (bench/serving.py's nginx configuration), with wrk.

``WHARF_BENCH_SERVED_ROOT`` serves another checkout (the code before a change) on the
same database and files.
"""

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from . import common, servers, serving
from .indexing import SUBDIR, wharf_load

UPLOADS = int(os.environ.get("BENCH_CLIENT_UPLOADS", "20"))
WINDOW = 20.0  # seconds a new version is looked for before it counts as not seen
WRK_SECONDS = 10


def _client(folder, token):
    """Files of a client with default settings: its auth file (the token, if any) and its
    cache folder."""
    auth = Path(folder) / "auth.json"
    auth.write_text(json.dumps({"127.0.0.1": {"BearerToken": token}} if token else {}))
    os.environ["RATTLER_AUTH_FILE"] = str(auth)
    return Path(folder) / "cache"


def command(base_url, channel, cache, name):
    """One client command: solve ``name`` with a new Gateway on the shared disk cache;
    return the versions of ``name`` it may install (the highest first)."""
    import rattler

    async def solve():
        gateway = rattler.Gateway(client=rattler.Client.authenticated_client(), cache_dir=cache)
        return await rattler.solve(
            [f"{base_url}/{channel}"], [name], gateway=gateway, platforms=[SUBDIR, "noarch"]
        )

    return [str(r.version) for r in asyncio.run(solve()) if r.name.normalized == name]


def until_seen(base_url, channel, cache, name, version):
    """(seconds from now until a command resolves ``version`` or None, commands run)."""
    started = time.perf_counter()
    commands = 0
    while time.perf_counter() - started < WINDOW:
        commands += 1
        if command(base_url, channel, cache, name) == [version]:
            return time.perf_counter() - started, commands
        time.sleep(0.05)
    return None, commands


def measure(base_url, channel, token, size, private, count=UPLOADS):
    """Upload ``count`` new versions, each seen (or not) by a client with the channel's
    credentials: the token for a private channel, none for a public one."""
    folder = tempfile.mkdtemp(prefix="wharf-client-fresh-")
    cache = _client(folder, token if private else None)
    names = size // common.BUILDS_PER_NAME
    seen, warm, commands = [], [], []
    for number in range(count):
        name = f"pkg{(number * 7 + (3 if private else 5)) % names:06d}"
        version = f"9.9.{number}"
        path = common.extra_package(Path(folder) / name, name, SUBDIR, version)
        took, versions = common.timed(command, base_url, channel, cache, name)
        assert version not in versions
        warm.append(took)
        assert servers.upload(base_url, channel, token, path) == 201
        took, runs = until_seen(base_url, channel, cache, name, version)
        seen.append(took)
        commands.append(runs)
        print(f"  {size} {name} {version}: {took} s after {runs} commands", file=sys.stderr)
    return {"seen": seen, "warm": warm, "commands": commands}


def not_modified_rates(channel, token, published_files):
    """req/s of 304 answers per (file, route) with wrk, ``WRK_SECONDS`` each."""
    from django.conf import settings

    tmp = Path(tempfile.mkdtemp(prefix="wharf-304-"))
    tmp.chmod(0o755)
    (tmp / "static").mkdir()
    port = serving._free_port()
    env = {
        "WHARF_ACCEL_REDIRECT_PREFIX": serving.ACCEL_PREFIX,
        "WHARF_ACCEL_CACHE_SECONDS": str(serving.AUTH_CACHE_SECONDS),
    }
    serving.WHARF_ROOT = servers.SERVED_ROOT
    wharf = serving.start_wharf(tmp, port, "gunicorn:3x8", **env)
    nginx = None
    rates = {}
    try:
        nginx, ports = serving.start_nginx(tmp, tmp / "static", settings.STORAGE_DIR, port)
        routes = {
            "Wharf (gunicorn 3x8), X-Accel": f"http://127.0.0.1:{ports['proxy_port']}",
            f"+ nginx auth cache ({serving.AUTH_CACHE_SECONDS} s)": (
                f"http://127.0.0.1:{ports['cache_port']}"
            ),
        }
        auth = {"Authorization": f"Bearer {token}"}
        for name in ("repodata.json.zst", "repodata_shards.msgpack.zst"):
            etag = published_files[name]["etag"]
            for route, base in routes.items():
                url = f"{base}/{channel}/{SUBDIR}/{name}"
                headers = {**auth, "If-None-Match": f'"{etag}"'}
                status, answered, _ = serving.request(url, headers)
                assert status == 304, (url, status)
                result = serving.wrk(url, headers, WRK_SECONDS, tmp)
                rates[f"{name}|{route}"] = {
                    "rps": result["rps"],
                    "p99_ms": result["p99_us"] / 1000,
                    "errors": result["errors"] + result["status"],
                    "cache_control": answered.get("Cache-Control"),
                }
    finally:
        if nginx is not None:
            serving._stop(nginx)
        serving._stop(wharf)
    return rates


def measure_size(size, rates):
    """Runs in its own process: load a channel, serve it, measure; print JSON."""
    common.setup_django(REDIS_URL="")  # this process imports and indexes by itself
    from accounts.models import ApiToken, User
    from packages_app.models import SubdirIndex

    channel, _ = wharf_load(common.packages(size))
    token = ApiToken.create_for(User.objects.get(username="bench"), "bench")[1]
    result = {}
    with servers.wharf(workers=2, threads=8, REDIS_URL=common.REDIS_URL) as (base_url, _):
        # The first change after a worker starts loads the records into memory (as in
        # bench.freshness): one upload first, not counted.
        warm_up = common.extra_package(tempfile.mkdtemp(), "warmup", SUBDIR, "1.0")
        assert servers.upload(base_url, channel.name, token, warm_up) == 201
        time.sleep(5)
        for private in (False, True):
            channel.private = private
            channel.save(update_fields=["private"])
            visibility = "private" if private else "public"
            result[visibility] = measure(base_url, channel.name, token, size, private)
        served = servers.get(base_url, f"{channel.name}/{SUBDIR}/repodata.json.zst", token)
    index = SubdirIndex.objects.get(channel=channel, subdir=SUBDIR)
    result["zst"] = len(served)
    if rates:
        result["rates"] = not_modified_rates(channel.name, token, index.published_files)
    print("RESULT " + json.dumps(result))


def _in_process(size, rates):
    import subprocess

    argv = [sys.executable, "-m", "bench.client_freshness", "--one", str(size)]
    if rates:
        argv.append("--rates")
    done = subprocess.run(argv, cwd=common.ROOT, env=common.bench_env(), check=True,
                          stdout=subprocess.PIPE, text=True)  # fmt: skip
    line = next(x for x in reversed(done.stdout.splitlines()) if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def _cells(measured, zst):
    found = [s for s in measured["seen"] if s is not None]
    missed = len(measured["seen"]) - len(found)
    window = f"not seen within {WINDOW:.0f} s"
    p50 = common.seconds(common.median(found)) if missed * 2 < len(measured["seen"]) else window
    p95 = common.seconds(common.percentile(found, 0.95)) if missed == 0 else window
    return [
        p50, p95, f"{missed} of {len(measured['seen'])}",
        f"{common.median(measured['commands']):.0f}",
        common.ms(common.median(measured["warm"])), f"{zst / 1e3:,.0f} kB",
    ]  # fmt: skip


def run(report, sizes=(1000, 100000)):
    served = servers.SERVED_ROOT
    label = "this checkout" if served == common.ROOT else f"`{served}`"
    rows, rate_rows = [], []
    for size in sizes:
        result = _in_process(size, rates=size == max(sizes))
        for visibility in ("public", "private"):
            rows.append([f"{size:,}", visibility, *_cells(result[visibility], result["zst"])])
        for key, rate in result.get("rates", {}).items():
            name, _, route = key.partition("|")
            rate_rows.append([
                f"{size:,}", name, route, f"{rate['rps']:,.0f} req/s",
                f"{rate['p99_ms']:.1f} ms", rate["errors"], f"`{rate['cache_control']}`",
            ])  # fmt: skip
    report.table(
        f"Freshness as a client sees it: py-rattler, default settings ({label})",
        ["records", "channel", "p50", "p95", "not seen", "commands to see it", "warm command",
         "repodata.json.zst"],
        rows,
        note=(
            f"{UPLOADS} uploads per row of a new version of an existing name, served by "
            "gunicorn (2x8) with one Celery worker (concurrency 2); the same channel, public "
            "(read without credentials) then private (a Bearer token). Before each upload "
            "one command resolves the name (warm cache); the time runs from the upload's "
            "201 to the end of the first later command (a new rattler Gateway on the same "
            "cache folder) that resolves the new version; one not resolved within "
            f"{WINDOW:.0f} s counts as not seen. 'warm command': the command before the "
            "upload. Target: p95 <= 2 s at 100,000."
        ),
    )  # fmt: skip
    if rate_rows:
        report.table(
            f"The price of revalidation: 304 answers per second ({label})",
            ["records", "file", "route", "304s", "p99", "errors", "Cache-Control"],
            rate_rows,
            note=(
                f"wrk -t2 -c{serving.CONNECTIONS}, {WRK_SECONDS} s per case, Bearer token "
                "and the file's ETag in If-None-Match; nginx with bench/serving.py's "
                "configuration. nginx, gunicorn, PostgreSQL and wrk share the 2 cores."
            ),
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        measure_size(int(sys.argv[2]), "--rates" in sys.argv)
        sys.exit()
    chosen = tuple(int(arg) for arg in sys.argv[1:]) or (1000, 100000)
    report = common.Report("Freshness as a client sees it")
    run(report, chosen)
    report.write()
