"""Serving: Wharf's authenticated conda file route against nginx serving the same files.

One private channel with ``size`` packages (plus one of 16 MiB), one token. nginx serves a
copy of the published files from a static directory (sendfile on): the yardstick. Wharf
runs on the same database under gunicorn (gthread; a few worker and thread counts are
tried) and, when it is installed, granian, in three modes:

- direct: clients talk to Wharf, which sends the bytes itself (sendfile under gunicorn);
- X-Accel: clients talk to nginx, Wharf authorizes every request and answers with
  ``X-Accel-Redirect`` (``WHARF_ACCEL_REDIRECT_PREFIX``), nginx sends the bytes;
- X-Accel + auth cache: as X-Accel, and nginx may reuse Wharf's answer for the same
  credentials and URL for ``WHARF_ACCEL_CACHE_SECONDS`` (here 2 s).

wrk drives 64 connections per case; every Wharf request carries the Bearer token.

Run it as ``python -m bench.serving`` (``--help`` for options). Set
``WHARF_BENCH_DATABASE_URL`` to use a database of your own.
"""

import argparse
import contextlib
import getpass
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import common

LARGE_DIR = common.BENCH_DIR / "serving-large"
LARGE_SIZE = 16 * 1024**2
CONNECTIONS = 64
CHANNEL = "bench-private"
ACCEL_PREFIX = "/_protected/"
AUTH_CACHE_SECONDS = 2
# Server settings tried on the first pass ("server:workers x threads"); the best of each
# server goes on. granian only when it is installed.
CONFIGS = ["gunicorn:2x4", "gunicorn:2x16", "gunicorn:4x4", "gunicorn:3x8", "granian:2x4",
           "granian:2x16"]  # fmt: skip

WRK_SCRIPT = """
done = function(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, '
    .. '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, summary.bytes, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""

NGINX_CONF = """
user {user};
worker_processes auto;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    default_type application/octet-stream;
    types {{ application/json json; application/zstd zst; }}
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 65;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    proxy_cache_path {tmp}/auth-cache levels=1:2 keys_zone=wharf_auth:10m max_size=64m
                     inactive=60s use_temp_path=off;

    # The same files, as plain static files: the yardstick.
    server {{
        listen 127.0.0.1:{static_port};
        root {static_dir};
    }}

    upstream wharf {{
        server 127.0.0.1:{wharf_port};
        keepalive 64;
    }}
    # X-Accel: Wharf authorizes every request, nginx sends the bytes.
    server {{
        listen 127.0.0.1:{proxy_port};
        client_max_body_size 0;
        location / {{
            proxy_pass http://wharf;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_request_buffering off;
        }}
        location {accel_prefix} {{
            internal;
            alias {storage_dir}/;
            # Wharf's validators (content digests), not nginx's (mtime and size).
            etag off;
            if_modified_since off;
            add_header ETag $upstream_http_etag;
            add_header Last-Modified $upstream_http_last_modified;
        }}
    }}

    # X-Accel + auth cache: Wharf's X-Accel-Redirect answers are kept for as long as
    # their X-Accel-Expires says, per credentials and URL, and reused by an auth_request.
    server {{
        listen 127.0.0.1:{cache_port};
        client_max_body_size 0;
        location / {{
            auth_request /_wharf_auth;
            auth_request_set $wharf_file $upstream_http_x_accel_redirect;
            auth_request_set $wharf_etag $upstream_http_etag;
            auth_request_set $wharf_modified $upstream_http_last_modified;
            auth_request_set $wharf_cache_control $upstream_http_cache_control;
            auth_request_set $wharf_disposition $upstream_http_content_disposition;
            try_files /.wharf-no-such-file @wharf_file;
        }}
        location = /_wharf_auth {{
            internal;
            proxy_pass http://wharf$request_uri;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_cache wharf_auth;
            proxy_cache_key "$http_host$request_uri|$http_authorization|$http_x_api_key";
            proxy_cache_bypass $cookie_sessionid;
            proxy_no_cache $cookie_sessionid;
            proxy_ignore_headers X-Accel-Redirect Cache-Control Expires;
            proxy_cache_lock on;
            # Any other answer (401, 404, ...): the request asks Wharf itself (@wharf).
            proxy_intercept_errors on;
            error_page 400 401 403 404 405 416 500 502 503 504 = @wharf_answers;
        }}
        location @wharf_answers {{
            return 204;
        }}
        location @wharf_file {{
            error_page 418 = @wharf;
            if ($wharf_file = "") {{
                return 418;
            }}
            add_header ETag $wharf_etag;
            add_header Last-Modified $wharf_modified;
            add_header Cache-Control $wharf_cache_control;
            if ($http_if_none_match = $wharf_etag) {{
                return 304;
            }}
            rewrite ^ /_cached$wharf_file last;
        }}
        location /_cached{accel_prefix}index/ {{
            internal;
            alias {storage_dir}/index/;
            types {{ application/json json; application/zstd zst; application/x-bzip2 bz2; }}
            etag off;
            if_modified_since off;
            add_header ETag $wharf_etag;
            add_header Last-Modified $wharf_modified;
            add_header Cache-Control $wharf_cache_control;
            # A newer publication may have removed the folder: ask Wharf.
            log_not_found off;
            error_page 404 = @wharf;
        }}
        location /_cached{accel_prefix} {{
            internal;
            alias {storage_dir}/;
            types {{ }}
            etag off;
            if_modified_since off;
            add_header ETag $wharf_etag;
            add_header Last-Modified $wharf_modified;
            add_header Cache-Control $wharf_cache_control;
            add_header Content-Disposition $wharf_disposition;
            log_not_found off;
            error_page 404 = @wharf;
        }}
        location {accel_prefix} {{
            internal;
            alias {storage_dir}/;
            etag off;
            if_modified_since off;
            add_header ETag $upstream_http_etag;
            add_header Last-Modified $upstream_http_last_modified;
        }}
        location @wharf {{
            proxy_pass http://wharf$request_uri;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
        }}
    }}
}}
"""


# -- set-up --------------------------------------------------------------------------


def _large_package():
    """One package of about 16 MiB (incompressible), made once."""
    import rattler_build

    done = LARGE_DIR / ".complete"
    if not done.exists():
        shutil.rmtree(LARGE_DIR, ignore_errors=True)
        files = LARGE_DIR / "_files"
        files.mkdir(parents=True)
        (files / "payload.bin").write_bytes(os.urandom(LARGE_SIZE))
        rattler_build.assemble_package(
            "bigpkg", "1.0.0", "linux-64", "h0_0", str(LARGE_DIR), files_dir=files,
            license="MIT", summary="A large benchmark package", compression_level=1,
        )  # fmt: skip
        done.write_text("")
    return next(LARGE_DIR.glob("*.conda"))


def _populate(size):
    from django.conf import settings

    from accounts.models import ApiToken, User
    from channels_app.lifecycle import create_channel
    from packages_app.index import rebuilds
    from packages_app.intake import importing
    from packages_app.models import PackageFile, SubdirIndex

    user = User.objects.create_user("bench", "bench@example.org", "bench-password-1")
    channel = create_channel(user, CHANNEL, private=True)
    _, secret = ApiToken.create_for(user, "bench")
    files = common.packages(size)
    large = _large_package()
    started = time.perf_counter()
    result = importing.import_files(channel, [*files, large], uploader=user)
    rebuilds.rebuild_until_current(channel.pk, "linux-64")
    took = time.perf_counter() - started
    if result.refused:
        raise RuntimeError(f"refused: {result.refused}")
    index = SubdirIndex.objects.get(channel=channel, subdir="linux-64")
    small = PackageFile.objects.get(channel=channel, filename=files[len(files) // 2].name)
    big = PackageFile.objects.get(channel=channel, filename=large.name)
    storage = settings.STORAGE_DIR
    return {
        "files": {
            "repodata.json.zst 200": storage / index.published_files["repodata.json.zst"]["path"],
            "small package": storage / small.storage_path,
            "16 MiB package": storage / big.storage_path,
        },
        "user": user,
        "secret": secret,
        "index": index.published_files["repodata.json.zst"]["path"],
        "small": (small.filename, small.storage_path),
        "large": (big.filename, big.storage_path),
        "import_seconds": took,
    }


def _static_copy(folder, storage, published):
    """The published files laid out like the channel, for nginx."""
    subdir = folder / CHANNEL / "linux-64"
    subdir.mkdir(parents=True)
    shutil.copy(storage / published["index"], subdir / "repodata.json.zst")
    for key in ("small", "large"):
        filename, path = published[key]
        shutil.copy(storage / path, subdir / filename)


# -- processes -----------------------------------------------------------------------


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port, process, log, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited early:\n{Path(log).read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} never opened:\n{Path(log).read_text()}")


def _stop(process):
    """Stop a server started in its own process group, workers included."""
    if process is None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # what a slow or killed master left behind
    process.wait()


def _install_tools():
    """nginx and wrk from Debian's packages when missing; returns what was installed."""
    missing = [tool for tool in ("nginx", "wrk") if not shutil.which(tool)]
    missing = [m for m in missing if not Path(f"/usr/sbin/{m}").exists()]
    if missing:
        subprocess.run(["apt-get", "update", "-q"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", *missing], check=True, stdout=subprocess.DEVNULL
        )
    return missing


def _nginx_binary():
    return shutil.which("nginx") or "/usr/sbin/nginx"


def start_nginx(tmp, static_dir, storage_dir, wharf_port):
    ports = {name: _free_port() for name in ("static_port", "proxy_port", "cache_port")}
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi", "auth-cache"):
        (tmp / name).mkdir(exist_ok=True)
    conf = tmp / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            user=getpass.getuser(),
            tmp=tmp,
            static_dir=static_dir,
            storage_dir=storage_dir,
            wharf_port=wharf_port,
            accel_prefix=ACCEL_PREFIX,
            **ports,
        )  # fmt: skip
    )
    log = tmp / "nginx.out"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [_nginx_binary(), "-c", str(conf), "-p", str(tmp)], stdout=out, stderr=out,
            start_new_session=True,
        )  # fmt: skip
    for port in ports.values():
        _wait_for_port(port, process, log)
    return process, ports


WHARF_ROOT = common.ROOT  # another checkout may be measured (--wharf-root)


def has_granian():
    return importlib.util.find_spec("granian") is not None


def start_wharf(tmp, port, config, **env):
    """Wharf under ``config`` ("gunicorn:2x4": gthread, 2 workers of 4 threads)."""
    server, _, size = config.partition(":")
    workers, threads = size.split("x")
    if server == "gunicorn":
        argv = ["-m", "gunicorn", "registry.wsgi", "--bind", f"127.0.0.1:{port}",
                "--worker-class", "gthread", "--workers", workers, "--threads", threads,
                "--worker-connections", "1000", "--keep-alive", "30", "--timeout", "120",
                "--log-level", "warning"]  # fmt: skip
    elif server == "granian":
        argv = ["-m", "granian", "--interface", "wsgi", "registry.wsgi:application",
                "--host", "127.0.0.1", "--port", str(port), "--workers", workers,
                "--blocking-threads", threads, "--no-ws", "--http", "1",
                "--log-level", "warning"]  # fmt: skip
    else:
        raise ValueError(config)
    log = tmp / f"{server}-{port}.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, *argv], cwd=WHARF_ROOT, env=_server_env(**env), stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    _wait_for_port(port, process, log)
    return process


def _server_env(**extra):
    # Serving needs no broker: index rebuilds do not happen during the runs.
    return common.bench_env(REDIS_URL="", **extra)


# -- measuring -----------------------------------------------------------------------


def request(url, headers=None, method="GET"):
    """(status, headers (case-insensitive), body) of one request."""
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def wrk(url, headers, duration, tmp):
    script = tmp / "report.lua"
    script.write_text(WRK_SCRIPT)
    argv = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{duration}s", "--timeout", "10s",
            "-s", str(script)]  # fmt: skip
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    done = subprocess.run([*argv, url], capture_output=True, text=True, check=True)
    line = next(x for x in done.stdout.splitlines() if x.startswith("WRKJSON "))
    result = json.loads(line.removeprefix("WRKJSON "))
    seconds = result["duration_us"] / 1e6
    result["rps"] = result["requests"] / seconds
    result["mbps"] = result["bytes"] / seconds / 1024**2
    result["errors"] = sum(result[k] for k in ("connect", "read", "write", "timeout"))
    return result


def _cases(base, secret, etag_of):
    """(case, url, headers, expected status) for one server."""
    auth = {"Authorization": f"Bearer {secret}"} if secret else {}
    index = f"{base}/{CHANNEL}/linux-64/repodata.json.zst"
    return [
        ("repodata.json.zst 200", index, auth, 200),
        ("repodata.json.zst 304", index, {**auth, "If-None-Match": etag_of(index, auth)}, 304),
        ("small package", f"{base}/{CHANNEL}/linux-64/{{small}}", auth, 200),
        ("16 MiB package", f"{base}/{CHANNEL}/linux-64/{{large}}", auth, 200),
    ]


def _etag(url, headers):
    status, response_headers, _ = request(url, headers, method="HEAD")
    if status != 200:
        raise RuntimeError(f"HEAD {url}: {status}")
    return response_headers["ETag"]


def measure(base, secret, published, duration, tmp, only=None):
    results = {}
    for case, url, headers, expected in _cases(base, secret, _etag):
        if only and case not in only:
            continue
        url = url.format(small=published["small"][0], large=published["large"][0])
        status, _, body = request(url, headers)
        if status != expected:
            raise RuntimeError(f"{case}: {url} answered {status}, not {expected}: {body[:200]}")
        if expected == 200 and body != published["files"][case].read_bytes():
            raise RuntimeError(f"{case}: {url} answered other bytes than the file's")
        results[case] = wrk(url, headers, duration, tmp)
        r = results[case]
        print(
            f"  {base} {case}: {r['rps']:.0f} req/s, {r['mbps']:.1f} MiB/s, "
            f"p50 {r['p50_us'] / 1000:.2f} ms, p99 {r['p99_us'] / 1000:.2f} ms, "
            f"status errors {r['status']}, socket errors {r['errors']}",
            flush=True,
        )
    return results


def revocation_delay(base, published, watch=10):
    """Revoke the token (as another process would: one UPDATE); when was it last accepted?

    The index is requested for ``watch`` seconds; returns the time of the last answer
    that was not 401, or None if the last one still was not. A new token replaces the
    revoked one in ``published``.
    """
    from django.utils import timezone

    from accounts import tokens
    from accounts.models import ApiToken

    url = f"{base}/{CHANNEL}/linux-64/repodata.json.zst"
    headers = {"Authorization": f"Bearer {published['secret']}"}
    if request(url, headers)[0] != 200:
        raise RuntimeError("the token was refused before its revocation")
    ApiToken.objects.filter(digest=tokens.digest(published["secret"])).update(
        revoked_at=timezone.now()
    )
    started = time.monotonic()
    last_accepted = 0.0
    status = 200
    try:
        while time.monotonic() - started < watch:
            status = request(url, headers)[0]
            if status != 401:
                last_accepted = time.monotonic() - started
            time.sleep(0.02)
        return None if status != 401 else last_accepted
    finally:
        published["secret"] = ApiToken.create_for(published["user"], "bench")[1]


def check_range(base, secret, published, storage):
    """A Range request on a package file; returns (status, Content-Range, right bytes)."""
    filename, path = published["large"]
    url = f"{base}/{CHANNEL}/linux-64/{filename}"
    status, headers, body = request(
        url, {"Authorization": f"Bearer {secret}", "Range": "bytes=1000-1999"}
    )
    with open(storage / path, "rb") as fh:
        fh.seek(1000)
        right = body == fh.read(1000)
    return status, headers.get("Content-Range"), right


# -- the run -------------------------------------------------------------------------


def _row(server, case, result, reference=None):
    ratio = ""
    if reference is not None:
        key = "mbps" if "package" in case else "rps"
        ratio = f"{result[key] / reference[key]:.0%}"
    return [
        server,
        case,
        f"{result['rps']:,.0f}",
        f"{result['mbps']:,.1f}",
        f"{result['p50_us'] / 1000:.2f} ms",
        f"{result['p99_us'] / 1000:.2f} ms",
        result["status"],
        result["errors"],
        ratio,
    ]


COLUMNS = ["server", "case", "req/s", "MiB/s", "p50", "p99", "4xx/5xx", "socket errors",
           "vs nginx"]  # fmt: skip


def _score(results, reference):
    """Geometric mean of the ratios to nginx (req/s for the index, MiB/s for packages)."""
    product = 1.0
    for case, result in results.items():
        key = "mbps" if "package" in case else "rps"
        product *= result[key] / reference[case][key]
    return product ** (1 / len(results))


def _label(config):
    server, _, size = config.partition(":")
    return f"{server} {size}" + (" gthread" if server == "gunicorn" else "")


def run(report, size=10000, duration=30, trial_duration=8, configs=None, modes=None):
    from django.conf import settings

    installed = _install_tools()
    common.setup_django(REDIS_URL="")
    common.reset_database()
    published = _populate(size)
    storage = settings.STORAGE_DIR
    configs = [c for c in configs or CONFIGS if not c.startswith("granian") or has_granian()]
    modes = modes or ("direct", "accel", "accel-cache")
    tmp = Path(tempfile.mkdtemp(prefix="wharf-serving-"))
    tmp.chmod(0o755)  # nginx workers read the static copy
    static_dir = tmp / "static"
    _static_copy(static_dir, storage, published)
    wharf_port = _free_port()
    wharf_url = f"http://127.0.0.1:{wharf_port}"
    nginx = wharf = None

    def measured(config, base, length, checks=False, **env):
        nonlocal wharf
        wharf = start_wharf(tmp, wharf_port, config, **env)
        try:
            print(f"{config} {env}", flush=True)
            results = measure(base, published["secret"], published, length, tmp)
            if not checks:
                return results, None
            ranged = check_range(base, published["secret"], published, storage)
            delay = revocation_delay(base, published)
            revoked = "still accepted after 10 s" if delay is None else f"{delay:.1f} s"
            return results, (*ranged, revoked)
        finally:
            _stop(wharf)
            wharf = None

    try:
        nginx, ports = start_nginx(tmp, static_dir, storage, wharf_port)
        static = f"http://127.0.0.1:{ports['static_port']}"

        # 1. Which server settings serve best, in short runs of the direct mode.
        reference = measure(static, None, published, trial_duration, tmp)
        trials = {config: measured(config, wharf_url, trial_duration)[0] for config in configs}
        report.table(
            f"Server settings, direct mode ({trial_duration} s per case, {CONNECTIONS} "
            "connections)",
            ["server", *reference, "geometric mean vs nginx"],
            [
                [
                    _label(config),
                    *(_cell(case, r[case]) for case in reference),
                    f"{_score(r, reference):.0%}",
                ]
                for config, r in sorted(trials.items(), key=lambda t: -_score(t[1], reference))
            ],
        )
        best = {}
        for config, results in trials.items():
            server = config.partition(":")[0]
            score = _score(results, reference)
            if server not in best or score > _score(trials[best[server]], reference):
                best[server] = config
        overall = max(best.values(), key=lambda c: _score(trials[c], reference))

        # 2. The full runs.
        reference = measure(static, None, published, duration, tmp)
        rows = [_row("nginx static", case, result) for case, result in reference.items()]
        ranges = []
        runs = []
        if "direct" in modes:
            runs += [(f"Wharf direct, {_label(c)}", c, wharf_url, {}) for c in best.values()]
        accel = {"WHARF_ACCEL_REDIRECT_PREFIX": ACCEL_PREFIX}
        if "accel" in modes:
            proxy = f"http://127.0.0.1:{ports['proxy_port']}"
            runs += [(f"nginx + X-Accel, {_label(c)}", c, proxy, accel) for c in best.values()]
        if "accel-cache" in modes:
            cache = f"http://127.0.0.1:{ports['cache_port']}"
            label = f"nginx + X-Accel + {AUTH_CACHE_SECONDS} s auth cache, {_label(overall)}"
            env = {**accel, "WHARF_ACCEL_CACHE_SECONDS": str(AUTH_CACHE_SECONDS)}
            runs.append((label, overall, cache, env))
        for label, config, base, env in runs:
            results, checked = measured(config, base, duration, checks=True, **env)
            rows += [_row(label, case, result, reference[case]) for case, result in results.items()]
            ranges.append((label, *checked))
        index_size = (storage / published["index"]).stat().st_size
        small_size = (storage / published["small"][1]).stat().st_size
        report.table(
            f"Authenticated conda file requests ({duration} s per case, {CONNECTIONS} connections)",
            COLUMNS,
            rows,
            note=(
                f"Private channel `{CHANNEL}`, {size} packages plus one of 16 MiB in linux-64; "
                f"repodata.json.zst is {index_size:,} bytes, the small package "
                f"{small_size:,} bytes. Every Wharf request sends `Authorization: Bearer "
                "<token>`; the 304 case sends the real ETag in If-None-Match. Ratios: req/s "
                "for the index, MiB/s for packages. wrk -t2 -c64, latency p50/p99 from wrk. "
                "nginx, Wharf, PostgreSQL and wrk share the machine's cores."
                + (f" Installed for this run: {', '.join(installed)}." if installed else "")
            ),
        )
        report.table(
            "Checks: a Range request on the 16 MiB package, and a revocation",
            ["server", "status", "Content-Range", "right bytes", "revoked token last accepted"],
            ranges,
            note=(
                "`Range: bytes=1000-1999`. Then the token is revoked with one UPDATE, as "
                "another process would, and the index is requested for 10 s; "
                f"bounds: WHARF_TOKEN_CACHE_SECONDS (5 s), plus WHARF_ACCEL_CACHE_SECONDS "
                f"({AUTH_CACHE_SECONDS} s) with the auth cache."
            ),
        )
        report.text(
            f"Import and index of {size + 1} packages: {published['import_seconds']:.1f} s."
        )
        if WHARF_ROOT != common.ROOT:
            report.text(f"Wharf was served from another checkout: `{WHARF_ROOT}`.")
    finally:
        _stop(wharf)
        _stop(nginx)
        shutil.rmtree(tmp, ignore_errors=True)


def _cell(case, result):
    if "package" in case:
        return f"{result['mbps']:,.0f} MiB/s"
    return f"{result['rps']:,.0f} req/s"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--duration", type=int, default=30, help="seconds per case")
    parser.add_argument("--trial-duration", type=int, default=8, help="seconds per trial case")
    parser.add_argument(
        "--config", action="append", default=None, metavar="SERVER:WORKERSxTHREADS",
        help=f"server settings to try (repeatable); default {' '.join(CONFIGS)}",
    )  # fmt: skip
    parser.add_argument(
        "--mode", action="append", choices=["direct", "accel", "accel-cache"], default=None,
        help="modes of the full runs (repeatable); default all three",
    )  # fmt: skip
    parser.add_argument("--no-write", action="store_true", help=f"do not append to {common.REPORT}")
    parser.add_argument(
        "--wharf-root", type=Path, default=None,
        help="serve Wharf from another checkout (e.g. the code before a change)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.wharf_root:
        global WHARF_ROOT
        WHARF_ROOT = args.wharf_root.resolve()
    report = common.Report("Serving")
    run(report, size=args.size, duration=args.duration, trial_duration=args.trial_duration,
        configs=args.config, modes=args.mode)  # fmt: skip
    if not args.no_write:
        report.write()


if __name__ == "__main__":
    main()
