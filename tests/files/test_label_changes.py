"""Changing labels, of one file or of a label's files at once: every index the change
touches is rebuilt and equals one built from scratch. And the migration that gave every
existing file main."""

import orjson
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from accounts.models import ApiToken, AuditEvent
from packages_app.index import records as index_records
from packages_app.models import FileLabel, PackageFile

from ..labels import (
    base_of,
    change_labels,
    from_scratch,
    listed,
    published_forms,
    settle,
    upload_with,
)
from ..packages import upload
from ..published import body

pytestmark = pytest.mark.django_db(transaction=True)


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
    index_records.record_sets.clear()
    assert owner.post(f"/api/v1/reindex/{public_channel.name}/linux-64").status_code == 202
    settle(public_channel, "linux-64", "main", "dev")
    for label, before in served.items():
        after = body(client.get(f"{base_of(public_channel, label)}/linux-64/repodata.json"))
        assert after == before, label


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
