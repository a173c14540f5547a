"""Scale-out: the deployment docker-compose.yml describes — migrations, two web processes,
two Celery workers and beat, on the test database (PostgreSQL in services mode, as in CI),
a Redis of its own and a real S3 server — built and started as tests/deployment.py
explains, then used by the real clients and by concurrent uploaders through both web
processes.
"""

import re
import subprocess
import sys
import threading

import pytest
import rattler_build

from accounts.models import ApiToken, User
from channels_app.lifecycle import create_channel
from packages_app.models import PackageFile

from ..clients import installed_names, solve_and_install
from ..conftest import _accepts_connections, _subprocess_env
from ..deployment import Image, compose_services, service_env
from ..packages import wait_for_index
from ..served import call, served_filenames, upload

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

UPLOADERS = 4
UPLOADS_EACH = 12


BUCKET = "wharf-scale-out"


class Deployment:
    def __init__(self, processes, folder, s3):
        self.processes = processes
        self.image = Image(folder / "image")
        self.services = compose_services()
        self.data = folder / "data"  # the image's /data volume
        self.data.mkdir()
        self.s3 = s3
        # A bucket of its own, as s3-init creates one in compose.
        if BUCKET not in {b["Name"] for b in s3.client.list_buckets()["Buckets"]}:
            s3.client.create_bucket(Bucket=BUCKET)
        # A Redis of its own: the session's worker, which stores in a directory, must not
        # take this deployment's tasks.
        self.replacements = {
            "DATABASE_URL": _subprocess_env()["DATABASE_URL"],
            "REDIS_URL": f"redis://127.0.0.1:{processes.redis().port}/0",
            **s3.env(S3_BUCKET=BUCKET, S3_PUBLIC_ENDPOINT_URL=s3.endpoint_url),
            "S3_ENDPOINT_URL": s3.endpoint_url,
            "WHARF_DATA_DIR": str(self.data),
            # beat sends its periodic jobs every second, not every minute
            "WHARF_RECONCILE_SECONDS": "1",
        }

    def env(self, name):
        return service_env(self.image, self.services[name], self.replacements)

    def argv(self, name):
        """The service's command; compose's /data is the test's data folder."""
        return [a.replace("/data", str(self.data)) for a in self.image.argv(self.services[name])]

    def run(self, name, argv=None):
        """Run service ``name``'s one-shot command (or ``argv``) to its end; its output."""
        return subprocess.run(
            argv or self.argv(name), cwd=self.image.app, env=self.env(name), check=True,
            capture_output=True,
text=True,
        ).stdout  # fmt: skip

    def start_web(self, number):
        port = self.processes.free_port()
        argv = self.argv("web")
        argv[argv.index("0.0.0.0:8000")] = f"127.0.0.1:{port}"
        argv[argv.index("--workers") + 1] = "2"  # two cores here
        self.processes.start(
            f"web{number}", argv, python=False, cwd=self.image.app, env=self.env("web"),
            ready=lambda: _accepts_connections(port),
        )  # fmt: skip
        return f"http://127.0.0.1:{port}"

    def start_worker(self, number):
        """A worker; in containers each has a host name, a /tmp and a port of its own."""
        argv = [*self.argv("worker"), "-n", f"worker{number}@%h"]
        env = self.env("worker")
        assert env["WHARF_WORKER_METRICS_PORT"] and env["PROMETHEUS_MULTIPROC_DIR"]
        port = self.processes.free_port()
        env["WHARF_WORKER_METRICS_PORT"] = str(port)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(self.processes.folder / f"metrics{number}")
        log = self.processes.folder / f"worker{number}.log"
        process = self.processes.start(
            f"worker{number}", argv, python=False, cwd=self.image.app, env=env,
            ready=lambda: " ready." in log.read_text() and _accepts_connections(port),
        )  # fmt: skip
        process.metrics = f"http://127.0.0.1:{port}/metrics"
        return process

    def start_beat(self):
        log = self.processes.folder / "beat.log"
        return self.processes.start(
            "beat", self.argv("beat"), python=False, cwd=self.image.app, env=self.env("beat"),
            ready=lambda: "beat: Starting" in log.read_text(),
        )  # fmt: skip

    def bucket_keys(self, prefix):
        pages = self.s3.client.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=prefix
        )
        return {entry["Key"] for page in pages for entry in page.get("Contents", ())}


def test_two_web_processes_and_two_workers_serve_real_clients_and_concurrent_uploads(
    processes, s3_server, packages, tmp_path, monkeypatch
):
    deployment = Deployment(processes, tmp_path, s3_server)
    assert "No migrations to apply" in deployment.run("migrate")
    web = [deployment.start_web(1), deployment.start_web(2)]
    workers = [deployment.start_worker(1), deployment.start_worker(2)]
    deployment.start_beat()
    for base in web:
        assert call("GET", f"{base}/readyz")[0] == 200

    owner = User.objects.create_user("owner", "owner@example.org", "pw")
    channel = create_channel(owner, "team", private=True)
    token = ApiToken.create_for(owner, "ci")[1]

    # The real upload clients, each through another web process.
    base_pkg = packages.make("base", "2.3", "noarch", extension=".tar.bz2")
    tool = packages.make("tool", "1.0", "linux-64", depends=["base >=2"])
    rattler_build.upload_package_to_prefix([str(tool)], web[0], channel.name, api_key=token)
    rattler_build.upload_package_to_quetz([str(base_pkg)], web[1], channel.name, api_key=token)
    wait_for_index(channel, "linux-64")
    wait_for_index(channel, "noarch")

    # py-rattler solves through one web process and installs by following the redirects
    # to presigned URLs of the bucket.
    auth = {"127.0.0.1": {"BearerToken": token}}
    _, prefix = solve_and_install(
        [f"{web[1]}/{channel.name}"], auth, tmp_path, monkeypatch, ["tool"]
    )
    assert installed_names(prefix) == ["base", "tool"]
    status, headers, _ = _fetch_no_redirect(f"{web[0]}/{channel.name}/linux-64/{tool.name}", token)
    assert status == 302
    assert headers["Location"].startswith(f"{s3_server.endpoint_url}/{BUCKET}/packages/")
    assert call("GET", f"{web[0]}/{channel.name}/linux-64/{tool.name}")[0] == 401

    # Concurrent uploads, spread over both web processes.
    accepted, refused = [], []

    def uploader(number):
        for i in range(UPLOADS_EACH):
            path = packages.make(f"c{number}x{i}", "1.0", "linux-64")
            status, body = upload(web[i % 2], channel.name, token, path)
            (accepted if status == 201 else refused).append((path.name, status, body[:200]))

    threads = [threading.Thread(target=uploader, args=(n,)) for n in range(UPLOADERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert refused == []
    assert len(accepted) == UPLOADERS * UPLOADS_EACH
    wait_for_index(channel, "linux-64")
    expected = {name for name, _, _ in accepted} | {tool.name}
    for base in web:
        assert served_filenames(base, channel.name, token, "linux-64") == expected

    # Every file is one object in the bucket, none on local disk; both workers built.
    rows = set(PackageFile.objects.filter(channel=channel).values_list("storage_path", flat=True))
    assert deployment.bucket_keys(f"packages/{channel.pk}/") == rows
    assert not (deployment.data / "storage").exists()
    assert all("rebuild_subdir_index" in w.log.read_text() for w in workers)
    report = deployment.run("web", [sys.executable, "manage.py", "check_storage"])
    assert f"{len(rows)} package files checked, 0 missing, 0 orphans" in report
    beat_log = (processes.folder / "beat.log").read_text()
    assert re.search(r"Sending due task reconcile indexes", beat_log)

    # Metrics: each web process counts the uploads of all its gunicorn workers, each
    # worker the rebuilds of its pool.
    uploads = [_sample(base + "/metrics", 'wharf_uploads_total{status="201"}') for base in web]
    rebuilds = [_sample(w.metrics, "wharf_index_rebuild_duration_seconds_count") for w in workers]
    assert sum(uploads) == len(accepted) + 2
    assert all(count > 0 for count in uploads)
    assert all(count > 0 for count in rebuilds)


def _sample(url, name):
    status, body = call("GET", url)
    assert status == 200, (url, status)
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in {url}")


def _fetch_no_redirect(url, token):
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()
