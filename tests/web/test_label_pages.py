"""Labels on the package, channel and upload pages, and set in the admin."""

import pytest
from pytest_django.asserts import assertContains, assertNotContains

from packages_app.models import PackageFile

from ..labels import base_of, listed, upload_with
from ..packages import wait_for_index

pytestmark = pytest.mark.django_db(transaction=True)


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
    refused = client.post(label_page_url(public_channel, beta), {"labels": "Bad Name"})
    assertContains(refused, "is not a label name", status_code=400)


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
