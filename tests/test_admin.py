"""The Django admin: channel owners manage their own channels, superusers everything."""

import orjson
import pytest
from django.core.files.storage import default_storage
from django.forms import MultiWidget

from channels_app.lifecycle import create_channel
from channels_app.models import Channel, Membership, RelatedChannel, Role
from packages_app.models import PackageFile, SubdirIndex

from .packages import upload, wait_for_index
from .test_labels import upload_with

CHANNELS = "/admin/channels_app/channel/"
MEMBERSHIPS = "/admin/channels_app/membership/"
PACKAGE_FILES = "/admin/packages_app/packagefile/"


@pytest.fixture
def elsewhere(users):
    """A private channel of the outsider's, with the member in it: not the owner's."""
    channel = create_channel(users["outsider"], "elsewhere", private=True)
    Membership.objects.create(channel=channel, user=users["member"], role=Role.MEMBER)
    return channel


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.org", "pw-root")


def signed_in(client, user):
    client.force_login(user)
    return client


def listed(client, url):
    response = client.get(url)
    assert response.status_code == 200, response.content
    return [str(row) for row in response.context["cl"].result_list]


def form_data(response):
    """What the change page at ``response`` would post back unchanged, inlines included."""
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    data = {}
    for form in forms:
        for name, field in form.fields.items():
            value = form[name].value()
            if value is None:
                continue
            if isinstance(field.widget, MultiWidget):  # a date and a time, say
                for i, part in enumerate(field.widget.decompress(value)):
                    data[f"{form.add_prefix(name)}_{i}"] = part
            else:
                data[form.add_prefix(name)] = value
    return data


def repodata(client, channel, subdir):
    response = client.get(f"/{channel}/{subdir}/repodata.json")
    assert response.status_code == 200
    return orjson.loads(b"".join(response.streaming_content))


def upload_and_index(client, channel, path, subdir):
    assert upload(client, channel.name, path).status_code == 201
    wait_for_index(channel, subdir)
    return PackageFile.objects.get(channel=channel, filename=path.name)


# Signing in ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_opens_the_admin_to_a_channel_owner_who_is_not_staff(client, users, private_channel):
    assert not users["owner"].is_staff

    response = signed_in(client, users["owner"]).get("/admin/")

    assert response.status_code == 200
    models = {m["object_name"] for app in response.context["app_list"] for m in app["models"]}
    assert models == {"Channel", "Membership", "PackageFile"}


@pytest.mark.django_db
def test_it_signs_an_owner_in_with_the_admin_login_form(client, users, private_channel):
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "owner", "password": "pw-owner"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["maintainer", "member", "outsider"])
def test_it_refuses_the_admin_to_users_who_own_no_channel(client, users, private_channel, who):
    response = signed_in(client, users[who]).get("/admin/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert signed_in(client, users[who]).get(CHANNELS).status_code == 302


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "/admin/accounts/user/",
        "/admin/accounts/apitoken/",
        "/admin/auth/group/",
        "/admin/packages_app/subdirindex/",
    ],
)
def test_it_keeps_site_models_from_owners(client, users, private_channel, url):
    assert signed_in(client, users["owner"]).get(url).status_code == 403


# Channels ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_lists_only_the_channels_an_owner_owns(
    client, users, private_channel, public_channel, elsewhere
):
    signed_in(client, users["owner"])

    assert sorted(listed(client, CHANNELS)) == ["open-tools", "private-team"]
    response = client.get(f"{CHANNELS}{elsewhere.pk}/change/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/"


@pytest.mark.django_db
def test_it_shows_member_and_file_counts(client, users, private_channel):
    response = signed_in(client, users["owner"]).get(CHANNELS)

    (channel,) = response.context["cl"].result_list
    assert (channel.member_total, channel.file_total) == (3, 0)


@pytest.mark.django_db
def test_it_does_not_change_a_channel_the_owner_does_not_own(client, users, elsewhere):
    signed_in(client, users["owner"])
    create_channel(users["owner"], "mine")

    response = client.post(
        f"{CHANNELS}{elsewhere.pk}/change/", {"name": "elsewhere", "description": "Taken"}
    )

    assert response.status_code == 302
    elsewhere.refresh_from_db()
    assert elsewhere.description == ""


@pytest.mark.django_db
def test_it_saves_an_owners_changes_but_not_a_new_name(client, users, private_channel):
    signed_in(client, users["owner"])
    url = f"{CHANNELS}{private_channel.pk}/change/"
    data = form_data(client.get(url))
    assert "name" not in data

    response = client.post(url, {**data, "name": "renamed", "description": "Changed"})

    assert response.status_code == 302, response.context["errors"]
    private_channel.refresh_from_db()
    assert (private_channel.name, private_channel.description) == ("private-team", "Changed")


@pytest.mark.django_db
def test_it_lets_an_owner_add_a_channel_they_then_own(client, users, private_channel):
    signed_in(client, users["owner"])

    response = client.post(f"{CHANNELS}add/", {"name": "fresh", "description": "New"})

    assert response.status_code == 302
    fresh = Channel.objects.get(name="fresh")
    assert fresh.memberships.get().user == users["owner"]
    assert fresh.memberships.get().role == Role.OWNER


@pytest.mark.django_db
def test_it_relates_only_channels_the_owner_may_read(
    client, users, private_channel, public_channel, elsewhere
):
    signed_in(client, users["owner"])
    url = f"{CHANNELS}{public_channel.pk}/change/"
    page = client.get(url)
    offered = page.context["inline_admin_formsets"][0].formset.form.base_fields["target"]
    assert elsewhere not in offered.queryset

    def relate(target):
        data = {**form_data(page), "related-TOTAL_FORMS": "1", "related-0-position": "0"}
        return client.post(url, {**data, "related-0-target": target.pk, "related-0-url": ""})

    assert relate(elsewhere).status_code == 200
    assert not RelatedChannel.objects.exists()
    assert relate(private_channel).status_code == 302
    assert RelatedChannel.objects.get().target == private_channel


@pytest.mark.django_db
def test_it_keeps_an_owner_when_roles_change_on_the_channel_page(client, users, private_channel):
    signed_in(client, users["owner"])
    url = f"{CHANNELS}{private_channel.pk}/change/"
    data = form_data(client.get(url))
    owner_row = next(key for key, value in data.items() if value == Role.OWNER)

    response = client.post(url, {**data, owner_row: Role.MAINTAINER})

    assert response.status_code == 200
    assert private_channel.role_of(users["owner"]) == Role.OWNER


@pytest.mark.django_db(transaction=True)
def test_it_deletes_a_channel_with_its_stored_index(client, users, private_channel):
    index = SubdirIndex.objects.get(channel=private_channel, subdir="noarch")
    stored = [entry["path"] for entry in index.published_files.values()]
    assert stored and all(default_storage.exists(path) for path in stored)

    response = signed_in(client, users["owner"]).post(
        f"{CHANNELS}{private_channel.pk}/delete/", {"post": "yes"}
    )

    assert response.status_code == 302
    assert not Channel.objects.filter(pk=private_channel.pk).exists()
    assert not any(default_storage.exists(path) for path in stored)


@pytest.mark.django_db(transaction=True)
def test_it_reindexes_the_selected_channels_the_owner_owns(
    client, users, client_for, private_channel, elsewhere, packages
):
    upload_and_index(
        client_for("owner"), private_channel, packages.make(subdir="linux-64"), "linux-64"
    )
    beta = packages.make("beta", "2.0", subdir="linux-64")
    assert upload_with(client_for("owner"), private_channel, beta, "label=dev").status_code == 201
    wait_for_index(private_channel, "linux-64", label="dev")
    before = dict(SubdirIndex.objects.values_list("pk", "requested_revision"))
    indexes = SubdirIndex.objects.filter(channel=private_channel)
    assert set(indexes.values_list("label", "subdir")) == {
        ("main", "linux-64"), ("main", "noarch"), ("dev", "linux-64"), ("dev", "noarch")
    }  # fmt: skip

    response = signed_in(client, users["owner"]).post(
        CHANNELS, {"action": "reindex", "_selected_action": [private_channel.pk, elsewhere.pk]}
    )

    assert response.status_code == 302
    for index in SubdirIndex.objects.all():
        raised = index.requested_revision > before[index.pk]
        assert raised == (index.channel_id == private_channel.pk), index
    assert wait_for_index(private_channel, "linux-64").is_current
    assert wait_for_index(private_channel, "noarch").is_current
    assert wait_for_index(private_channel, "linux-64", label="dev").is_current


# Memberships ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_lists_only_memberships_of_owned_channels(client, users, private_channel, elsewhere):
    rows = listed(signed_in(client, users["owner"]), MEMBERSHIPS)

    assert sorted(rows) == [
        "maintainer is maintainer of private-team",
        "member is member of private-team",
        "owner is owner of private-team",
    ]


@pytest.mark.django_db
def test_it_adds_members_only_to_owned_channels(client, users, private_channel, elsewhere):
    signed_in(client, users["owner"])
    offered = client.get(f"{MEMBERSHIPS}add/").context["adminform"].form.fields["channel"]
    assert list(offered.queryset) == [private_channel]

    refused = client.post(
        f"{MEMBERSHIPS}add/", {"channel": elsewhere.pk, "user": "owner", "role": Role.OWNER}
    )
    added = client.post(
        f"{MEMBERSHIPS}add/", {"channel": private_channel.pk, "user": "outsider", "role": "member"}
    )

    assert refused.status_code == 200
    assert "channel" in refused.context["adminform"].form.errors
    assert elsewhere.role_of(users["owner"]) is None
    assert added.status_code == 302
    assert private_channel.role_of(users["outsider"]) == Role.MEMBER


@pytest.mark.django_db
def test_it_keeps_the_last_owner_of_a_channel(client, users, private_channel):
    signed_in(client, users["owner"])
    membership = private_channel.memberships.get(user=users["owner"])
    url = f"{MEMBERSHIPS}{membership.pk}/"

    demoted = client.post(f"{url}change/", {"role": Role.MEMBER})
    removed = client.post(f"{url}delete/", {"post": "yes"})

    assert demoted.status_code == 200
    assert removed.status_code == 403
    membership.refresh_from_db()
    assert membership.role == Role.OWNER


# Package files -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_lists_only_package_files_of_owned_channels(
    client, users, client_for, private_channel, elsewhere, packages
):
    upload_and_index(client_for("owner"), private_channel, packages.make("ours"), "noarch")
    upload_and_index(client_for("outsider"), elsewhere, packages.make("theirs"), "noarch")

    rows = listed(signed_in(client, users["owner"]), PACKAGE_FILES)

    assert rows == ["private-team/noarch/ours-1.0.0-0.conda"]


@pytest.mark.django_db(transaction=True)
def test_it_deletes_selected_package_files_and_reindexes(
    client, users, client_for, private_channel, packages
):
    owner = client_for("owner")
    gone = upload_and_index(owner, private_channel, packages.make("gone"), "noarch")
    kept = upload_and_index(owner, private_channel, packages.make("kept"), "noarch")
    assert default_storage.exists(gone.storage_path)
    signed_in(client, users["owner"])
    action = {"action": "delete_selected", "_selected_action": [gone.pk]}

    choices = dict(client.get(PACKAGE_FILES).context["action_form"].fields["action"].choices)
    assert choices["delete_selected"] == "Delete selected package files and reindex"
    confirmation = client.post(PACKAGE_FILES, action)
    assert confirmation.status_code == 200
    assert PackageFile.objects.filter(pk=gone.pk).exists()
    response = client.post(PACKAGE_FILES, {**action, "post": "yes"})

    assert response.status_code == 302
    assert not PackageFile.objects.filter(pk=gone.pk).exists()
    assert not default_storage.exists(gone.storage_path)
    wait_for_index(private_channel, "noarch")
    assert sorted(repodata(owner, private_channel.name, "noarch")["packages.conda"]) == [
        kept.filename
    ]


@pytest.mark.django_db(transaction=True)
def test_it_deletes_one_package_file_from_its_page(
    client, users, client_for, private_channel, packages
):
    owner = client_for("owner")
    gone = upload_and_index(owner, private_channel, packages.make("gone"), "noarch")

    response = signed_in(client, users["owner"]).post(
        f"{PACKAGE_FILES}{gone.pk}/delete/", {"post": "yes"}
    )

    assert response.status_code == 302
    assert not PackageFile.objects.filter(pk=gone.pk).exists()
    assert not default_storage.exists(gone.storage_path)
    wait_for_index(private_channel, "noarch")
    assert repodata(owner, private_channel.name, "noarch")["packages.conda"] == {}


@pytest.mark.django_db(transaction=True)
def test_it_does_not_delete_package_files_of_other_channels(
    client, users, client_for, private_channel, elsewhere, packages
):
    theirs = upload_and_index(client_for("outsider"), elsewhere, packages.make("theirs"), "noarch")
    signed_in(client, users["owner"])

    client.post(PACKAGE_FILES, {"action": "delete_selected", "_selected_action": [theirs.pk],
                                "post": "yes"})  # fmt: skip
    single = client.post(f"{PACKAGE_FILES}{theirs.pk}/delete/", {"post": "yes"})

    assert single.status_code == 302
    assert single["Location"] == "/admin/"
    assert PackageFile.objects.filter(pk=theirs.pk).exists()
    assert default_storage.exists(theirs.storage_path)


# Superusers ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_shows_a_superuser_everything(client, superuser, private_channel, elsewhere):
    signed_in(client, superuser)

    assert sorted(listed(client, CHANNELS)) == ["elsewhere", "private-team"]
    assert len(listed(client, MEMBERSHIPS)) == Membership.objects.count() == 5
    assert client.get("/admin/accounts/user/").status_code == 200
    assert client.get("/admin/packages_app/subdirindex/").status_code == 200
