"""Uploads that name labels, in the URL or as form fields: checked before anything is
stored, and given to a replacement or kept from the file it replaces."""

import pytest
from django.test import Client

from packages_app.models import PackageFile

from ..labels import base_of, listed, settle, upload_with
from ..packages import multipart_body, sha256_of, upload

pytestmark = pytest.mark.django_db(transaction=True)


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
