"""Labels: /<channel>/label/<label>/ serves the files that carry the label; the channel's
own URL those that carry main. Moving a file between labels rebuilds both."""

import asyncio
import json
from types import SimpleNamespace

import orjson
import pytest
import rattler
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from pytest_django.asserts import assertContains, assertNotContains

from accounts.models import ApiToken, AuditEvent
from packages_app import indexing, repodata, statistics
from packages_app.models import DailyDownloads, FileLabel, PackageFile

from ..index import test_yank as yank_tests
from ..index.test_yank import body, solve
from ..packages import multipart_body, sha256_of, upload, wait_for_index

pytestmark = pytest.mark.django_db(transaction=True)


def base_of(channel, label=None):
    return f"/{channel.name}" + (f"/label/{label}" if label else "")


def settle(channel, subdir, *labels):
    """Every named label index of ``subdir`` current, its .bz2 included."""
    for label in labels:
        wait_for_index(channel, subdir, label=label)
    indexing.wait_for_background_work()
    for label in labels:
        indexing.refresh_bz2(channel.pk, subdir, label)


def upload_with(client, channel, path, query, *, force=False):
    """A prefix-style upload with ``query`` (e.g. "label=dev") added to its URL."""
    data, content_type = multipart_body(path)
    url = f"/api/v1/upload/{channel.name}?{'force=true&' if force else ''}{query}"
    return client.generic("POST", url, data, content_type=content_type)


def published_forms(client, base, subdir):
    """{form: (listed filenames, removed)} for every published form of the index at
    ``base`` (``/<channel>`` or ``/<channel>/label/<label>``)."""
    return yank_tests.published_forms(client, SimpleNamespace(name=base[1:]), subdir)


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
        channel=channel, subdir=subdir, state__in=indexing.LIVE_STATES, labels__label=label
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


# Serving -----------------------------------------------------------------------------------


def test_an_upload_to_dev_is_served_by_the_dev_label_only(client, public_channel, dev_and_main):
    stable, beta = dev_and_main

    main = published_forms(client, base_of(public_channel), "linux-64")
    dev = published_forms(client, base_of(public_channel, "dev"), "linux-64")

    assert set(main) == set(dev) == {"repodata.json", "repodata.json.zst",
                                     "repodata.json.bz2", "shards"}  # fmt: skip
    for form in main:
        assert main[form] == ({stable.name}, []), form
        assert dev[form] == ({beta.name}, []), form
    # Clients read noarch wherever they read a platform: the label has one, empty.
    noarch = client.get(f"{base_of(public_channel, 'dev')}/noarch/repodata.json")
    assert noarch.status_code == 200
    assert orjson.loads(body(noarch))["packages.conda"] == {}


def test_channeldata_follows_the_label(client, public_channel, dev_and_main, packages, client_for):
    only_dev = packages.make("preview-tool", "0.1", "linux-64")
    uploaded = upload_with(client_for("owner"), public_channel, only_dev, "label=dev")
    assert uploaded.status_code == 201

    main = orjson.loads(body(client.get(f"/{public_channel.name}/channeldata.json")))
    dev = orjson.loads(body(client.get(f"/{public_channel.name}/label/dev/channeldata.json")))

    assert sorted(main["packages"]) == ["demo"]
    assert main["packages"]["demo"]["version"] == "1.0"
    assert sorted(dev["packages"]) == ["demo", "preview-tool"]
    assert dev["packages"]["demo"]["version"] == "2.0"


def test_package_files_download_from_every_url_of_the_channel(client, public_channel, dev_and_main):
    stable, beta = dev_and_main
    urls = [
        f"/{public_channel.name}/linux-64/{beta.name}",  # the channel's own URL
        f"/{public_channel.name}/label/dev/linux-64/{beta.name}",
        # A file moved away from a label keeps the URL an environment locked to it found.
        f"/{public_channel.name}/label/dev/linux-64/{stable.name}",
    ]

    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
    assert body(client.get(urls[1])) == beta.read_bytes()
    missing = client.get(f"/{public_channel.name}/label/dev/linux-64/absent-1.0-h1_0.conda")
    assert missing.status_code == 404


def test_a_label_nobody_uses_answers_404_naming_it(client, public_channel, dev_and_main):
    stable, _ = dev_and_main
    paths = [
        "linux-64/repodata.json",
        "linux-64/repodata.json.zst",
        "linux-64/repodata_shards.msgpack.zst",
        f"linux-64/{stable.name}",
        "channeldata.json",
    ]

    for label in ("nightly", "Not-A-Label", "x" * 101):
        for path in paths:
            response = client.get(f"/{public_channel.name}/label/{label}/{path}")
            assert response.status_code == 404, (label, path)
            expected = f"No label '{label}' in channel '{public_channel.name}'."
            assert response.json()["detail"] == expected
    other_subdir = client.get(f"/{public_channel.name}/label/dev/osx-arm64/repodata.json")
    assert other_subdir.status_code == 404
    assert "osx-arm64 with label 'dev'" in other_subdir.json()["detail"]


def test_heads_of_label_urls_answer_as_their_gets(client, public_channel, dev_and_main):
    url = f"/{public_channel.name}/label/dev/linux-64/repodata.json"

    head, get = client.head(url), client.get(url)

    assert head.status_code == 200
    assert head["ETag"] == get["ETag"]
    assert head["Content-Length"] == str(len(body(get)))


def test_the_fast_path_and_url_routing_agree_on_label_urls(
    client, users, public_channel, dev_and_main
):
    """With a session cookie a request goes through URL resolution, without one through the
    fast path; both must answer label URLs alike."""
    signed_in = Client()
    signed_in.force_login(users["outsider"])
    paths = [
        "label/dev/linux-64/repodata.json",
        "label/dev/channeldata.json",
        "label/nightly/linux-64/repodata.json",
        "label/dev/",
        "label/dev/linux-64/",
    ]

    for path in paths:
        fast = client.get(f"/{public_channel.name}/{path}")
        routed = signed_in.get(f"/{public_channel.name}/{path}")
        assert (fast.status_code, body(fast)) == (routed.status_code, body(routed)), path


# Private channels --------------------------------------------------------------------------


@pytest.fixture
def private_dev(client_for, private_channel, packages):
    path = packages.make("secret-tool", "1.0", "linux-64")
    assert upload_with(client_for("owner"), private_channel, path, "label=dev").status_code == 201
    settle(private_channel, "linux-64", "dev")
    return path


def test_private_label_urls_answer_outsiders_as_missing_channels(
    users, tokens, private_channel, private_dev
):
    anonymous = Client()
    outsider = Client()
    outsider.force_login(users["outsider"])
    by_token = Client(headers={"Authorization": f"Bearer {tokens['outsider']}"})
    outsider_in_url = f"/t/{tokens['outsider']}"
    paths = [
        "label/dev/linux-64/repodata.json",
        "label/dev/linux-64/repodata_shards.msgpack.zst",
        f"label/dev/linux-64/{private_dev.name}",
        "label/dev/channeldata.json",
        "label/unused/linux-64/repodata.json",  # a label the channel does not have
    ]

    for path in paths:
        for visitor, prefix, status in [
            (anonymous, "", 401),
            (outsider, "", 404),
            (by_token, "", 404),
            (anonymous, outsider_in_url, 404),
        ]:
            hidden = visitor.get(f"{prefix}/{private_channel.name}/{path}")
            missing = visitor.get(f"{prefix}/no-such-channel/{path}")
            assert hidden.status_code == missing.status_code == status, (path, prefix)
            assert body(hidden) == body(missing).replace(b"no-such-channel", b"private-team")
            assert hidden.get("WWW-Authenticate") == missing.get("WWW-Authenticate")


def test_members_read_private_labels_by_token_in_the_url_and_by_bearer(
    tokens, private_channel, private_dev
):
    in_url = Client().get(f"/t/{tokens['member']}/{private_channel.name}/label/dev/linux-64/"
                          "repodata.json")  # fmt: skip
    bearer = Client(headers={"Authorization": f"Bearer {tokens['member']}"})
    package = bearer.get(f"/{private_channel.name}/label/dev/linux-64/{private_dev.name}")

    assert in_url.status_code == 200
    assert private_dev.name in orjson.loads(body(in_url))["packages.conda"]
    assert in_url["Cache-Control"].startswith("private")
    assert package.status_code == 200
    assert body(package) == private_dev.read_bytes()


# Uploading with labels ---------------------------------------------------------------------


def test_an_upload_may_carry_several_labels(client, client_for, public_channel, packages):
    repeated = packages.make("multi", "1.0", "linux-64")
    commas = packages.make("multi", "2.0", "linux-64")
    owner = client_for("owner")

    first = upload_with(owner, public_channel, repeated, "label=dev&label=rc")
    second = upload_with(owner, public_channel, commas, "label=rc,main")
    settle(public_channel, "linux-64", "main", "dev", "rc")

    assert first.json()["labels"] == ["dev", "rc"]
    assert second.json()["labels"] == ["main", "rc"]
    assert listed(client, base_of(public_channel), "linux-64") == {commas.name}
    assert listed(client, base_of(public_channel, "dev"), "linux-64") == {repeated.name}
    assert listed(client, base_of(public_channel, "rc"), "linux-64") == {repeated.name, commas.name}


def test_a_prefix_upload_takes_labels_as_form_fields(client, client_for, public_channel, packages):
    """As ``?label=``, before or after the file part, added to any in the URL."""
    first = packages.make("formed", "1.0", "linux-64")
    second = packages.make("formed", "2.0", "linux-64")
    owner = client_for("owner")
    url = f"/api/v1/upload/{public_channel.name}"

    data, content_type = multipart_body(first, before=[("label", "dev")], after=[("label", "rc")])
    one = owner.generic("POST", url, data, content_type=content_type)
    data, content_type = multipart_body(second, after=[("label", "main,rc")])
    two = owner.generic("POST", f"{url}?label=dev", data, content_type=content_type)
    settle(public_channel, "linux-64", "main", "dev", "rc")

    assert one.status_code == two.status_code == 201, (one.content, two.content)
    assert one.json()["labels"] == ["dev", "rc"]
    assert two.json()["labels"] == ["dev", "main", "rc"]
    assert listed(client, base_of(public_channel), "linux-64") == {second.name}
    assert listed(client, base_of(public_channel, "rc"), "linux-64") == {first.name, second.name}


def test_a_bad_label_form_field_is_refused_and_nothing_is_stored(
    client_for, public_channel, packages, settings, tmp_path
):
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "upload-temp")
    (tmp_path / "upload-temp").mkdir()
    path = packages.make("formed", "1.0", "linux-64")
    owner = client_for("owner")
    url = f"/api/v1/upload/{public_channel.name}"

    data, content_type = multipart_body(path, after=[("label", "Not Ok")])
    bad = owner.generic("POST", url, data, content_type=content_type)
    data, content_type = multipart_body(path, before=[("label", "x" * 5000)])
    long = owner.generic("POST", url, data, content_type=content_type)

    assert bad.status_code == long.status_code == 400
    assert "'Not Ok' is not a label name" in bad.json()["detail"]
    assert long.json()["detail"] == "The form field 'label' is longer than 4096 bytes."
    assert not PackageFile.objects.exists()
    assert not any((settings.STORAGE_DIR / "packages" / str(public_channel.pk)).rglob("*.conda"))
    assert not any((tmp_path / "upload-temp").iterdir())  # the received file is gone too


def test_the_quetz_upload_takes_labels_too(client, client_for, tokens, public_channel, packages):
    path = packages.make("quetzal", "1.0", "linux-64")
    url = (
        f"/api/channels/{public_channel.name}/upload/{path.name}?sha256={sha256_of(path)}&label=dev"
    )

    response = Client().generic(
        "POST", url, path.read_bytes(), content_type="application/octet-stream",
        headers={"X-API-Key": tokens["maintainer"]},
    )  # fmt: skip
    settle(public_channel, "linux-64", "dev")

    assert response.status_code == 201, response.content
    assert response.json()["labels"] == ["dev"]
    assert listed(client, base_of(public_channel, "dev"), "linux-64") == {path.name}


def test_bad_label_names_are_refused_with_the_name(client_for, public_channel, packages):
    path = packages.make("demo", "1.0", "linux-64")
    owner = client_for("owner")

    for bad in ("Dev", "-dev", "dev/x", "d" * 101, "dev%20x", "main,,Rc"):
        response = upload_with(owner, public_channel, path, f"label={bad}")
        assert response.status_code == 400, bad
        assert "is not a label name" in response.json()["detail"], bad
    assert not PackageFile.objects.exists()


def test_reuploading_the_same_file_with_other_labels_changes_nothing(
    client_for, public_channel, dev_and_main
):
    stable, _ = dev_and_main

    response = upload_with(client_for("owner"), public_channel, stable, "label=dev")

    assert response.status_code == 409
    assert "/labels/" in response.json()["detail"]
    assert PackageFile.objects.get(filename=stable.name).label_names == ["main"]


def test_a_replacement_carries_the_labels_its_upload_names(
    client, client_for, public_channel, dev_and_main, packages
):
    stable, _ = dev_and_main
    rebuilt = packages.make("demo", "1.0", "linux-64", summary="rebuilt")

    response = upload_with(client_for("owner"), public_channel, rebuilt, "label=dev", force=True)
    settle(public_channel, "linux-64", "main", "dev")

    assert response.status_code == 201
    assert response.json()["labels"] == ["dev"]
    assert stable.name not in listed(client, base_of(public_channel), "linux-64")
    assert stable.name in listed(client, base_of(public_channel, "dev"), "linux-64")


def test_a_replacement_naming_no_label_keeps_those_of_the_file_it_replaces(
    client, client_for, public_channel, dev_and_main, packages
):
    _, beta = dev_and_main
    rebuilt = packages.make("demo", "2.0", "linux-64", summary="rebuilt")

    response = upload(client_for("owner"), public_channel.name, rebuilt, force=True)
    settle(public_channel, "linux-64", "main", "dev")

    assert response.status_code == 201
    assert response.json()["labels"] == ["dev"]  # a dev build re-uploaded stays in dev
    assert beta.name not in listed(client, base_of(public_channel), "linux-64")
    assert beta.name in listed(client, base_of(public_channel, "dev"), "linux-64")
    assert "summary" in response.json() and response.json()["summary"] == "rebuilt"


# Moving labels -----------------------------------------------------------------------------


def test_moving_a_file_from_dev_to_main_rebuilds_both(
    client, client_for, public_channel, dev_and_main
):
    stable, beta = dev_and_main

    response = change_labels(client_for("maintainer"), public_channel, beta, add=["main"],
                             remove=["dev"])  # fmt: skip
    settle(public_channel, "linux-64", "main", "dev")

    assert response.status_code == 200, response.content
    assert response.json() == {"channel": public_channel.name, "subdir": "linux-64",
                               "filename": beta.name, "labels": ["main"]}  # fmt: skip
    main = published_forms(client, base_of(public_channel), "linux-64")
    dev = published_forms(client, base_of(public_channel, "dev"), "linux-64")
    for form in main:
        assert main[form] == ({stable.name, beta.name}, []), form
        assert dev[form] == (set(), []), form


def test_labels_may_be_set_all_at_once_and_read_back(client_for, public_channel, dev_and_main):
    _, beta = dev_and_main
    owner = client_for("owner")
    url = f"/api/v1/channels/{public_channel.name}/files/linux-64/{beta.name}/labels/"

    response = change_labels(owner, public_channel, beta, labels=["rc", "main", "rc"])

    assert response.status_code == 200
    assert response.json()["labels"] == ["main", "rc"]
    assert client_for("member").get(url).json()["labels"] == ["main", "rc"]
    files = client_for("member").get(f"/api/v1/channels/{public_channel.name}/files/")
    assert {f["filename"]: f["labels"] for f in files.json()["results"]}[beta.name] == [
        "main",
        "rc",
    ]


def test_a_file_keeps_at_least_one_label(client_for, public_channel, dev_and_main):
    _, beta = dev_and_main
    owner = client_for("owner")

    removed = change_labels(owner, public_channel, beta, remove=["dev"])
    emptied = change_labels(owner, public_channel, beta, labels=[])

    for response in (removed, emptied):
        assert response.status_code == 400
        assert "keeps at least one" in response.json()["labels"][0]
    assert PackageFile.objects.get(filename=beta.name).label_names == ["dev"]


def test_a_label_change_names_what_is_wrong_with_its_body(client_for, public_channel, dev_and_main):
    _, beta = dev_and_main
    owner = client_for("owner")

    bad_name = change_labels(owner, public_channel, beta, add=["Release Candidate"])
    both = change_labels(owner, public_channel, beta, add=["rc"], labels=["rc"])
    neither = change_labels(owner, public_channel, beta, tags=["rc"])
    not_a_list = change_labels(owner, public_channel, beta, add={"rc": 1})

    assert "'Release Candidate' is not a label name" in bad_name.json()["labels"][0]
    assert "not both" in both.json()["labels"][0]
    assert '{"labels": [...]}' in neither.json()["labels"][0]
    assert "as a list" in not_a_list.json()["labels"][0]
    for response in (bad_name, both, neither, not_a_list):
        assert response.status_code == 400
    assert PackageFile.objects.get(filename=beta.name).label_names == ["dev"]


def test_who_may_change_labels(client_for, users, private_channel, private_dev):
    _, read_only = ApiToken.create_for(users["owner"], "ci", read_only=True)
    add = {"add": ["main"]}

    member = change_labels(client_for("member"), private_channel, private_dev, **add)
    outsider = change_labels(client_for("outsider"), private_channel, private_dev, **add)
    anonymous = change_labels(client_for(), private_channel, private_dev, **add)
    read_only_token = change_labels(client_for(secret=read_only), private_channel, private_dev,
                                    **add)  # fmt: skip
    maintainer = change_labels(client_for("maintainer"), private_channel, private_dev, **add)

    assert member.status_code == 403
    assert "may not label packages" in member.json()["detail"]
    assert (outsider.status_code, anonymous.status_code) == (404, 401)
    assert read_only_token.status_code == 403
    assert maintainer.status_code == 200
    assert maintainer.json()["labels"] == ["dev", "main"]


def test_label_changes_are_audited(client_for, users, public_channel, dev_and_main):
    _, beta = dev_and_main
    change_labels(client_for("maintainer"), public_channel, beta, add=["main"], remove=["dev"])
    change_labels(client_for("maintainer"), public_channel, beta, add=["main"])  # no change

    events = AuditEvent.objects.filter(action="package.labels_changed")

    assert [(e.actor, e.channel, e.details) for e in events] == [
        (users["maintainer"], public_channel, {"subdir": "linux-64", "filename": beta.name,
         "added": ["main"], "removed": ["dev"], "labels": ["main"]}),
    ]  # fmt: skip


def test_the_channel_lists_its_labels_with_file_counts(client_for, public_channel, dev_and_main):
    _, beta = dev_and_main
    url = f"/api/v1/channels/{public_channel.name}/labels/"
    before = client_for().get(url)

    change_labels(client_for("owner"), public_channel, beta, labels=["main"])
    after = client_for().get(url)

    assert before.json() == [{"name": "main", "files": 1}, {"name": "dev", "files": 1}]
    # A label whose files all left is still served (empty), so still listed.
    assert after.json() == [{"name": "main", "files": 2}, {"name": "dev", "files": 0}]


def test_deleting_the_last_file_of_a_label_leaves_it_empty(client, client_for, public_channel,
                                                          dev_and_main):  # fmt: skip
    _, beta = dev_and_main

    deleted = client_for("owner").delete(
        f"/api/v1/delete/{public_channel.name}/linux-64/{beta.name}"
    )
    settle(public_channel, "linux-64", "dev")

    assert deleted.status_code == 204
    assert listed(client, base_of(public_channel, "dev"), "linux-64") == set()
    assert not FileLabel.objects.filter(label="dev").exists()


def test_a_yanked_file_is_removed_in_every_label_it_carries(
    client, client_for, public_channel, dev_and_main
):
    stable, beta = dev_and_main
    owner = client_for("owner")
    assert change_labels(owner, public_channel, beta, add=["rc"]).status_code == 200

    yanked = owner.post(f"/api/v1/yank/{public_channel.name}/linux-64/{beta.name}",
                        {"reason": "broken"}, format="json")  # fmt: skip
    settle(public_channel, "linux-64", "main", "dev", "rc")

    assert yanked.status_code == 200
    for label in ("dev", "rc"):
        for form, forms in published_forms(client, base_of(public_channel, label),
                                           "linux-64").items():  # fmt: skip
            assert forms == (set(), [beta.name]), (label, form)
    main = published_forms(client, base_of(public_channel), "linux-64")["repodata.json"]
    assert main == ({stable.name}, [])


def test_incremental_rebuilds_equal_rebuilds_from_scratch_per_label(
    client, client_for, public_channel, packages
):
    owner = client_for("owner")
    paths = {}
    for name in ("alpha", "beta", "gamma"):
        for version in ("1.0", "2.0"):
            paths[name, version] = path = packages.make(name, version, "linux-64")
            label = "dev" if version == "2.0" else "main"
            assert upload_with(owner, public_channel, path, f"label={label}").status_code == 201
    settle(public_channel, "linux-64", "main", "dev")
    # Moves, a copy, a yank and a delete after the first builds.
    change_labels(owner, public_channel, paths["alpha", "2.0"], labels=["main"])
    change_labels(owner, public_channel, paths["beta", "1.0"], add=["dev"])
    change_labels(owner, public_channel, paths["gamma", "1.0"], labels=["dev"])
    owner.post(f"/api/v1/yank/{public_channel.name}/linux-64/{paths['beta', '2.0'].name}",
               {"reason": "bad"}, format="json")  # fmt: skip
    owner.delete(f"/api/v1/delete/{public_channel.name}/linux-64/{paths['gamma', '2.0'].name}")
    settle(public_channel, "linux-64", "main", "dev")

    served = {
        label: body(client.get(f"{base_of(public_channel, label)}/linux-64/repodata.json"))
        for label in (None, "dev")
    }

    assert served[None] == from_scratch(public_channel, "linux-64", "main")
    assert served["dev"] == from_scratch(public_channel, "linux-64", "dev")
    main = orjson.loads(served[None])
    dev = orjson.loads(served["dev"])
    assert set(main["packages.conda"]) == {paths["alpha", n].name for n in ("1.0", "2.0")} | {
        paths["beta", "1.0"].name
    }
    assert set(dev["packages.conda"]) == {paths["beta", "1.0"].name, paths["gamma", "1.0"].name}
    assert dev["removed"] == [paths["beta", "2.0"].name]
    # A new worker, without cached records, rebuilding both from scratch: the same bytes.
    indexing.record_sets.clear()
    assert owner.post(f"/api/v1/reindex/{public_channel.name}/linux-64").status_code == 202
    settle(public_channel, "linux-64", "main", "dev")
    for label, before in served.items():
        after = body(client.get(f"{base_of(public_channel, label)}/linux-64/repodata.json"))
        assert after == before, label


def test_downloads_through_label_urls_count(client, public_channel, dev_and_main):
    _, beta = dev_and_main
    statistics._redis.cache_clear()
    if statistics.settings.REDIS_URL:
        statistics.flush()
    DailyDownloads.objects.all().delete()

    assert client.get(f"/{public_channel.name}/label/dev/linux-64/{beta.name}").status_code == 200
    assert client.get(f"/{public_channel.name}/linux-64/{beta.name}").status_code == 200
    statistics.flush()

    row = DailyDownloads.objects.get(channel=public_channel)
    assert (row.filename, row.downloads) == (beta.name, 2)


# Migration ---------------------------------------------------------------------------------


def test_the_migration_gives_every_existing_file_main(public_channel):
    before = [("packages_app", "0006_merge_0005_statistics_0005_yank")]
    after = [("packages_app", "0007_labels")]
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate(before)
        old = executor.loader.project_state(before).apps
        file_model = old.get_model("packages_app", "PackageFile")
        for name in ("one", "two"):
            file_model.objects.create(
                channel_id=public_channel.pk, subdir="noarch", filename=f"{name}-1-0.conda",
                name=name, version="1", build="0", size=1, sha256="0" * 64, md5="0" * 32,
                record_json="{}", storage_path=f"x/{name}",
            )  # fmt: skip
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        new = executor.loader.project_state(after).apps
        labels = new.get_model("packages_app", "FileLabel").objects.values_list(
            "file__filename", "label"
        )
        indexes = new.get_model("packages_app", "SubdirIndex").objects.values_list("label")
        assert sorted(labels) == [("one-1-0.conda", "main"), ("two-1-0.conda", "main")]
        assert set(indexes) == {("main",)}  # the channel's noarch index, made before
    finally:
        MigrationExecutor(connection).migrate(leaves)


# Web pages and the admin -------------------------------------------------------------------


def label_page_url(channel, path):
    return f"/{channel.name}/packages/demo/files/{path.parent.name}/{path.name}/labels/"


def test_the_package_page_shows_labels_and_moves_files(client, users, public_channel, dev_and_main):
    _, beta = dev_and_main
    client.force_login(users["maintainer"])
    page = client.get(f"/{public_channel.name}/packages/demo/")
    assertContains(page, '<span class="chip">dev</span>')
    assertContains(page, f'aria-label="Labels of {beta.name}"')

    response = client.post(label_page_url(public_channel, beta), {"labels": "main, rc"},
                           follow=True)  # fmt: skip

    assertContains(response, f"linux-64/{beta.name} now carries main, rc")
    assert PackageFile.objects.get(filename=beta.name).label_names == ["main", "rc"]
    refused = client.post(label_page_url(public_channel, beta), {"labels": "Bad Name"},
                          follow=True)  # fmt: skip
    assertContains(refused, "is not a label name")


def test_the_package_page_offers_members_no_label_form(
    client, users, client_for, private_channel, packages
):
    path = packages.make("demo", "1.0", "linux-64")
    assert upload_with(client_for("owner"), private_channel, path, "label=dev").status_code == 201
    client.force_login(users["member"])

    page = client.get(f"/{private_channel.name}/packages/demo/")
    refused = client.post(label_page_url(private_channel, path), {"labels": "main"})
    client.force_login(users["outsider"])
    hidden = client.post(label_page_url(private_channel, path), {"labels": "main"})

    assertContains(page, '<span class="chip">dev</span>')
    assertNotContains(page, "Labels of")
    assert (refused.status_code, hidden.status_code) == (403, 404)
    assert PackageFile.objects.get(filename=path.name).label_names == ["dev"]


def test_the_channel_page_names_its_labels_when_it_has_more_than_main(
    client, client_for, public_channel, packages
):
    url = f"http://testserver/{public_channel.name}"
    before = client.get(f"/{public_channel.name}/")
    path = packages.make("demo", "2.0", "linux-64")
    assert upload_with(client_for("owner"), public_channel, path, "label=dev").status_code == 201

    after = client.get(f"/{public_channel.name}/")

    assertNotContains(before, "/label/")
    assertContains(after, f'<code>{url}/label/dev</code> <span class="muted">(1 file)</span>')
    assertContains(after, f"-c {url}/label/dev")


def test_the_upload_page_asks_for_labels(client, users, public_channel):
    client.force_login(users["maintainer"])

    page = client.get(f"/{public_channel.name}/upload/")

    assertContains(page, 'id="upload-label" type="text" value="main"')


def test_an_owner_sets_labels_in_the_admin(client, users, public_channel, dev_and_main):
    stable, beta = dev_and_main
    ids = [str(PackageFile.objects.get(filename=path.name).pk) for path in (stable, beta)]
    client.force_login(users["owner"])
    chosen = {"action": "label_selected", "_selected_action": ids}

    asked = client.post("/admin/packages_app/packagefile/", chosen)
    refused = client.post("/admin/packages_app/packagefile/",
                          {**chosen, "apply": "1", "add": "", "remove": "main,dev"})  # fmt: skip
    done = client.post("/admin/packages_app/packagefile/",
                       {**chosen, "apply": "1", "add": "rc", "remove": "dev"})  # fmt: skip

    assertContains(asked, 'name="add"')
    assertContains(refused, "keeps at least one")
    assert done.status_code == 302
    labels = {f.filename: f.label_names for f in PackageFile.objects.all()}
    assert labels == {stable.name: ["main", "rc"], beta.name: ["rc"]}
    wait_for_index(public_channel, "linux-64", label="rc")
    assert listed(client, base_of(public_channel, "rc"), "linux-64") == {stable.name, beta.name}


# The real client ---------------------------------------------------------------------------


@pytest.mark.live
def test_rattler_finds_dev_builds_only_through_the_dev_label(
    live_server_url, client_for, tokens, private_channel, packages, tmp_path
):
    stable = packages.make("demo", "1.0", "linux-64")
    beta = packages.make("demo", "2.0", "linux-64")
    owner = client_for("owner")
    assert upload(owner, private_channel.name, stable).status_code == 201
    assert upload_with(owner, private_channel, beta, "label=dev").status_code == 201
    settle(private_channel, "linux-64", "main", "dev")
    channel_url = f"{live_server_url}/t/{tokens['member']}/{private_channel.name}"

    plain = solve(channel_url, ["demo"], tmp_path / "plain")
    dev = solve(f"{channel_url}/label/dev", ["demo"], tmp_path / "dev")
    with pytest.raises(Exception, match="demo"):
        solve(channel_url, ["demo ==2.0"], tmp_path / "pinned")

    assert [str(r.version) for r in plain if r.name.normalized == "demo"] == ["1.0"]
    assert [str(r.version) for r in dev if r.name.normalized == "demo"] == ["2.0"]
    prefix = tmp_path / "env"
    asyncio.run(rattler.install(dev, prefix, cache_dir=tmp_path / "pkgs", show_progress=False))
    installed = [json.loads(p.read_text()) for p in (prefix / "conda-meta").glob("demo-*.json")]
    assert [(r["version"], r["sha256"]) for r in installed] == [("2.0", sha256_of(beta))]
    # Promoted to main, the plain channel finds it.
    assert change_labels(owner, private_channel, beta, labels=["main"]).status_code == 200
    settle(private_channel, "linux-64", "main", "dev")
    promoted = solve(channel_url, ["demo"], tmp_path / "promoted")
    assert [str(r.version) for r in promoted if r.name.normalized == "demo"] == ["2.0"]


# Moving a label's files at once ---------------------------------------------------------


def move(client, channel, label, **body):
    url = f"/api/v1/channels/{channel.name}/labels/{label}/move/"
    return client.post(url, body, format="json")


@pytest.fixture
def rc_builds(client_for, public_channel, packages):
    """demo 2.0 (linux-64 and noarch) and demo 2.1 (linux-64) with label rc only, demo 1.0
    in main."""
    owner = client_for("owner")
    assert (
        upload(owner, public_channel.name, packages.make("demo", "1.0", "linux-64")).status_code
        == 201
    )
    built = [
        packages.make("demo", "2.0", "linux-64"),
        packages.make("demo", "2.0", "noarch", build="1"),
        packages.make("demo", "2.1", "linux-64"),
    ]
    for path in built:
        assert upload_with(owner, public_channel, path, "label=rc").status_code == 201
    settle(public_channel, "linux-64", "main", "rc")
    return built


def test_a_version_moves_from_rc_to_main_in_one_request(
    client, client_for, public_channel, rc_builds
):
    linux, noarch, newer = rc_builds

    response = move(client_for("maintainer"), public_channel, "rc", to="main", version="2.0")
    settle(public_channel, "linux-64", "main", "rc")
    settle(public_channel, "noarch", "main", "rc")

    assert response.status_code == 200, response.content
    assert response.json()["files"] == [
        {"subdir": "linux-64", "filename": linux.name, "labels": ["main"]},
        {"subdir": "noarch", "filename": noarch.name, "labels": ["main"]},
    ]
    assert listed(client, base_of(public_channel), "linux-64") == {
        "demo-1.0-h1234_0.conda",
        linux.name,
    }
    assert listed(client, base_of(public_channel), "noarch") == {noarch.name}
    assert listed(client, base_of(public_channel, "rc"), "linux-64") == {newer.name}
    assert listed(client, base_of(public_channel, "rc"), "noarch") == set()
    for subdir, label in [("linux-64", "main"), ("linux-64", "rc"), ("noarch", "main")]:
        base = base_of(public_channel, None if label == "main" else label)
        served = body(client.get(f"{base}/{subdir}/repodata.json"))
        assert served == from_scratch(public_channel, subdir, label)
    event = AuditEvent.objects.get(action="package.labels_moved")
    assert event.details["files"] == [f"linux-64/{linux.name}", f"noarch/{noarch.name}"]
    assert (event.details["label"], event.details["to"], event.details["copy"]) == (
        "rc",
        "main",
        False,
    )


def test_a_copy_keeps_the_label_the_files_had(client, client_for, public_channel, rc_builds):
    response = move(client_for("owner"), public_channel, "rc", to="main", package="demo", copy=True)
    settle(public_channel, "linux-64", "main", "rc")

    assert response.status_code == 200, response.content
    assert {tuple(f["labels"]) for f in response.json()["files"]} == {("main", "rc")}
    assert len(response.json()["files"]) == 3
    assert listed(client, base_of(public_channel, "rc"), "linux-64") == {
        rc_builds[0].name, rc_builds[2].name
    }  # fmt: skip
    assert len(listed(client, base_of(public_channel), "linux-64")) == 3


def test_a_move_is_refused_clearly_and_changes_nothing(client_for, public_channel, rc_builds):
    maintainer = client_for("maintainer")
    before = sorted(FileLabel.objects.values_list("file_id", "label"))

    answers = {
        "member": move(client_for("member"), public_channel, "rc", to="main"),
        "same": move(maintainer, public_channel, "rc", to="rc"),
        "bad name": move(maintainer, public_channel, "rc", to="Main"),
        "no to": move(maintainer, public_channel, "rc"),
        "nothing": move(maintainer, public_channel, "rc", to="main", version="9.9"),
        "no label": move(maintainer, public_channel, "beta", to="main"),
    }

    assert {k: r.status_code for k, r in answers.items()} == {
        "member": 403, "same": 400, "bad name": 400, "no to": 400, "nothing": 404, "no label": 404,
    }  # fmt: skip
    assert "already carry 'rc'" in answers["same"].json()["labels"][0]
    assert "'Main' is not a label name" in answers["bad name"].json()["labels"][0]
    assert "to" in answers["no to"].json()
    assert answers["nothing"].json()["detail"] == (
        f"No file of version '9.9' carries the label 'rc' in channel '{public_channel.name}'."
    )
    assert sorted(FileLabel.objects.values_list("file_id", "label")) == before
    assert not AuditEvent.objects.filter(action="package.labels_moved").exists()
