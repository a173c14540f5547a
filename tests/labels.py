"""Labels in tests: uploads that name labels, label indexes waited for, what a label's URL
publishes and what a rebuild from scratch would, and two fixtures: demo 1.0 in main with
2.0 in dev (public channel), and a dev-only file in the private channel."""

from types import SimpleNamespace

import orjson
import pytest

from packages_app import runner
from packages_app.index import bz2_refresh, repodata
from packages_app.index import records as index_records
from packages_app.models import PackageFile

from . import published
from .packages import multipart_body, upload, wait_for_index
from .published import body


def base_of(channel, label=None):
    return f"/{channel.name}" + (f"/label/{label}" if label else "")


def settle(channel, subdir, *labels):
    """Every named label index of ``subdir`` current, its .bz2 included."""
    for label in labels:
        wait_for_index(channel, subdir, label=label)
    runner.wait_for_background_work()
    for label in labels:
        bz2_refresh.refresh_bz2(channel.pk, subdir, label)


def upload_with(client, channel, path, query, *, force=False):
    """A prefix-style upload with ``query`` (e.g. "label=dev") added to its URL."""
    data, content_type = multipart_body(path)
    url = f"/api/v1/upload/{channel.name}?{'force=true&' if force else ''}{query}"
    return client.generic("POST", url, data, content_type=content_type)


def published_forms(client, base, subdir):
    """{form: (listed filenames, removed)} for every published form of the index at
    ``base`` (``/<channel>`` or ``/<channel>/label/<label>``)."""
    return published.published_forms(client, SimpleNamespace(name=base[1:]), subdir)


def listed(client, base, subdir):
    doc = orjson.loads(body(client.get(f"{base}/{subdir}/repodata.json")))
    return set(doc["packages"]) | set(doc["packages.conda"])


def change_labels(client, channel, path, **data):
    url = f"/api/v1/channels/{channel.name}/files/{path.parent.name}/{path.name}/labels/"
    return client.post(url, data, format="json")


def from_scratch(channel, subdir, label):
    """repodata.json of ``label`` built from the database alone, ignoring every cache."""
    records = repodata.RecordSet(subdir)
    rows = PackageFile.objects.filter(
        channel=channel, subdir=subdir, state__in=index_records.LIVE_STATES, labels__label=label
    ).values_list("filename", "name", "record_json", "yanked_at")
    records.replace_names([], rows)
    return records.repodata_json()


@pytest.fixture
def dev_and_main(client_for, public_channel, packages):
    """demo 1.0 in main, demo 2.0 in dev only (linux-64)."""
    stable = packages.make("demo", "1.0", "linux-64")
    beta = packages.make("demo", "2.0", "linux-64")
    owner = client_for("owner")
    assert upload(owner, public_channel.name, stable).status_code == 201
    response = upload_with(owner, public_channel, beta, "label=dev")
    assert response.status_code == 201, response.content
    settle(public_channel, "linux-64", "main", "dev")
    return stable, beta


@pytest.fixture
def private_dev(client_for, private_channel, packages):
    path = packages.make("secret-tool", "1.0", "linux-64")
    assert upload_with(client_for("owner"), private_channel, path, "label=dev").status_code == 201
    settle(private_channel, "linux-64", "dev")
    return path
