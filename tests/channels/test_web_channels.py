"""The channel pages: home, channel list, new channel, channel page, upload, members,
settings and delete — every page with every kind of visitor."""

import re

import pytest
from django.core.files.storage import default_storage
from django.test import Client

from accounts.models import User
from channels_app.lifecycle import create_channel
from channels_app.models import Channel, Membership, RelatedChannel, Role
from packages_app.models import PackageFile

from ..packages import upload, wait_for_index

pytestmark = pytest.mark.django_db


@pytest.fixture
def web(users):
    """``web("owner")`` is a browser-like client signed in as that person; ``web()`` anonymous."""

    def make(who=None, **kwargs):
        client = Client(**kwargs)
        if who:
            client.force_login(users[who])
        return client

    return make


@pytest.fixture
def others_private_channel(users):
    """A private channel of the outsider, unknown to everyone else."""
    return create_channel(users["outsider"], "secret-lab", private=True)


def text(response):
    return response.content.decode()


def same_page(a, b):
    """Equal but for the CSRF token, which is masked differently in every response."""
    token = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')
    return token.sub("", a) == token.sub("", b)


# -- home and channel list ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_home_lists_recent_packages_only_from_readable_channels(
    web, client_for, private_channel, public_channel, packages
):
    upload(client_for("owner"), "private-team", packages.make("hidden-tool"))
    upload(client_for("owner"), "open-tools", packages.make("open-lib"))
    wait_for_index(private_channel, "noarch")

    anonymous = text(web().get("/"))
    member = text(web("member").get("/"))

    assert "open-lib" in anonymous
    assert "hidden-tool" not in anonymous
    assert "hidden-tool" in member and "open-lib" in member
    assert 'type="search"' in anonymous


def test_channel_list_shows_public_channels_and_the_users_own(
    web, private_channel, public_channel, others_private_channel
):
    anonymous = text(web().get("/channels/"))
    member = text(web("member").get("/channels/"))

    assert "open-tools" in anonymous
    assert "private-team" not in anonymous and "secret-lab" not in anonymous
    assert "private-team" in member and "secret-lab" not in member
    assert "Your channels" in member and "New channel" in member


# -- new channel -------------------------------------------------------------------------


def test_new_channel_needs_a_signed_in_user(web):
    response = web().get("/channels/new/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/channels/new/")


def test_new_channel_creates_a_private_channel_owned_by_its_creator(web, users):
    response = web("member").post(
        "/channels/new/", {"name": "robotics", "description": "Our libs", "private": "on"}
    )

    assert response.status_code == 302 and response["Location"] == "/robotics/"
    channel = Channel.objects.get(name="robotics")
    assert channel.private and channel.description == "Our libs"
    assert channel.role_of(users["member"]) == Role.OWNER
    # Its empty noarch index is published at once, so clients can use it right away.
    assert web("member").get("/robotics/noarch/repodata.json").status_code == 200


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Bad Name", "lowercase letters"),
        ("admin", "reserved"),
        ("secret-lab", "already exists"),
        ("", "required"),
    ],
)
def test_new_channel_refuses_bad_names(web, others_private_channel, name, message):
    response = web("member").post("/channels/new/", {"name": name})

    assert response.status_code == 400
    assert message in text(response)
    assert Channel.objects.filter(created_by__username="member").count() == 0


# -- channel page ------------------------------------------------------------------------


def test_a_public_channel_page_shows_install_instructions_without_login(web, public_channel):
    page = text(web().get("/open-tools/"))

    assert "http://testserver/open-tools" in page
    assert "pixi init my-project -c http://testserver/open-tools" in page
    assert "micromamba create -n my-env -c http://testserver/open-tools" in page
    assert "conda create -n my-env -c http://testserver/open-tools" in page
    assert "auth login" not in page
    assert "badge public" in page


def test_a_private_channel_page_shows_the_login_steps_to_members(web, private_channel):
    page = text(web("member").get("/private-team/"))

    assert "pixi auth login testserver --token &lt;YOUR-TOKEN&gt;" in page
    assert "micromamba auth login http://testserver --bearer &lt;YOUR-TOKEN&gt;" in page
    assert "-c http://testserver/t/&lt;YOUR-TOKEN&gt;/private-team" in page
    assert "badge private" in page


@pytest.mark.parametrize("who", [None, "outsider"])
def test_a_private_channel_page_is_a_plain_404_for_others(web, private_channel, who):
    hidden = web(who).get("/private-team/")
    missing = web(who).get("/no-such-channel/")

    assert hidden.status_code == missing.status_code == 404
    assert same_page(
        text(hidden).replace("private-team", "X"), text(missing).replace("no-such-channel", "X")
    )
    assert "Ours" not in text(hidden)  # the channel's description


@pytest.mark.parametrize(
    ("who", "tabs"),
    [
        ("member", set()),
        ("maintainer", {"upload"}),
        ("owner", {"upload", "members", "settings"}),
    ],
)
def test_the_channel_tabs_follow_the_role(web, private_channel, who, tabs):
    page = text(web(who).get("/private-team/"))

    shown = {tab for tab in ("upload", "members", "settings") if f"/private-team/{tab}/" in page}
    assert shown == tabs


def test_the_channel_page_lists_related_channels_in_install_commands(
    web, private_channel, public_channel
):
    RelatedChannel.objects.create(channel=private_channel, position=0, target=public_channel)
    RelatedChannel.objects.create(
        channel=private_channel, position=1, url="https://conda.anaconda.org/conda-forge"
    )

    page = text(web("member").get("/private-team/"))

    assert (
        "-c http://testserver/private-team -c http://testserver/open-tools "
        "-c https://conda.anaconda.org/conda-forge" in page
    )


@pytest.mark.django_db(transaction=True)
def test_the_channel_page_lists_packages_and_filters_them(
    web, client_for, public_channel, packages
):
    for name in ("alpha", "beta"):
        upload(client_for("owner"), "open-tools", packages.make(name, "2.0"))
    wait_for_index(public_channel, "noarch")

    page = text(web().get("/open-tools/"))
    filtered = text(web().get("/open-tools/?q=alp"))

    assert "/open-tools/packages/alpha/" in page and "/open-tools/packages/beta/" in page
    assert "/open-tools/packages/alpha/" in filtered
    assert "/open-tools/packages/beta/" not in filtered


# -- upload ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "status"), [(None, 404), ("outsider", 404), ("member", 403), ("maintainer", 200)]
)
def test_the_upload_page_is_for_maintainers(web, private_channel, who, status):
    assert web(who).get("/private-team/upload/").status_code == status


def test_the_upload_page_has_a_keyboard_usable_drop_zone(web, private_channel):
    page = text(web("maintainer").get("/private-team/upload/"))

    assert 'class="dropzone" role="button" tabindex="0"' in page
    assert 'data-upload-url="/api/v1/upload/private-team"' in page
    assert '<label for="upload-input"' in page


@pytest.mark.django_db(transaction=True)
def test_a_browser_session_uploads_with_its_csrf_token(web, private_channel, packages):
    path = packages.make("dropped", "1.0")
    client = web("maintainer", enforce_csrf_checks=True)
    client.get("/private-team/upload/")  # sets the CSRF cookie, as the page does
    headers = {"X-File-Name": path.name}

    refused = client.post(
        "/api/v1/upload/private-team",
        path.read_bytes(),
        content_type="application/octet-stream",
        headers=headers,
    )
    accepted = client.post(
        "/api/v1/upload/private-team",
        path.read_bytes(),
        content_type="application/octet-stream",
        headers={**headers, "X-CSRFToken": client.cookies["csrftoken"].value},
    )

    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert accepted.status_code == 201, accepted.content
    wait_for_index(private_channel, "noarch")
    files = client.get("/api/v1/channels/private-team/files/", {"filename": path.name}).json()
    assert [f["state"] for f in files["results"]] == ["indexed"]


@pytest.mark.django_db(transaction=True)
def test_a_member_session_cannot_upload(web, private_channel, packages):
    path = packages.make("dropped", "1.0")
    client = web("member")

    response = client.post(
        "/api/v1/upload/private-team",
        path.read_bytes(),
        content_type="application/octet-stream",
        headers={"X-File-Name": path.name},
    )

    assert response.status_code == 403
    assert not PackageFile.objects.exists()


# -- members -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "status"), [(None, 404), ("outsider", 404), ("member", 403), ("maintainer", 403)]
)
def test_only_owners_see_the_members_page(web, private_channel, who, status):
    assert web(who).get("/private-team/members/").status_code == status
    response = web(who).post("/private-team/members/", {"action": "add", "user": "outsider"})
    assert response.status_code == status
    assert not private_channel.memberships.filter(user__username="outsider").exists()


def _user(name):
    return User.objects.get(username=name)


@pytest.mark.parametrize("identifier", ["outsider", "OUTSIDER@example.org"])
def test_owners_add_members_by_username_or_email(web, private_channel, identifier):
    response = web("owner").post(
        "/private-team/members/", {"action": "add", "user": identifier, "role": "maintainer"}
    )

    assert response.status_code == 302
    assert private_channel.role_of(_user("outsider")) == Role.MAINTAINER
    assert "outsider" in text(web("owner").get("/private-team/members/"))


@pytest.mark.parametrize("identifier", ["nobody", "outs", "example.org", "member"])
def test_adding_an_unknown_or_present_user_names_the_problem(web, private_channel, identifier):
    before = set(Membership.objects.values_list("channel", "user", "role"))

    response = web("owner").post(
        "/private-team/members/", {"action": "add", "user": identifier, "role": "owner"}
    )

    assert response.status_code == 400
    page = text(response)
    assert f"No account &#x27;{identifier}&#x27; here." in page or "already a member" in page
    assert set(Membership.objects.values_list("channel", "user", "role")) == before


def test_owners_change_roles_and_remove_members(web, private_channel, users):
    owner = web("owner")
    member = Membership.objects.get(channel=private_channel, user=users["member"])
    maintainer = Membership.objects.get(channel=private_channel, user=users["maintainer"])

    owner.post(
        "/private-team/members/", {"action": "role", "membership": member.pk, "role": "owner"}
    )
    owner.post("/private-team/members/", {"action": "remove", "membership": maintainer.pk})

    roles = dict(
        Membership.objects.filter(channel=private_channel).values_list("user__username", "role")
    )
    assert roles == {"owner": "owner", "member": "owner"}


def test_the_last_owner_cannot_leave_or_step_down(web, private_channel, users):
    mine = Membership.objects.get(channel=private_channel, user=users["owner"])
    owner = web("owner")

    demoted = owner.post(
        "/private-team/members/", {"action": "role", "membership": mine.pk, "role": "member"},
        follow=True,
    )  # fmt: skip
    removed = owner.post(
        "/private-team/members/", {"action": "remove", "membership": mine.pk}, follow=True
    )

    assert "must keep at least one owner" in text(demoted)
    assert "must keep at least one owner" in text(removed)
    assert Membership.objects.get(pk=mine.pk).role == Role.OWNER


def test_a_membership_of_another_channel_cannot_be_changed_from_this_one(
    web, private_channel, others_private_channel, users
):
    foreign = Membership.objects.get(channel=others_private_channel)

    response = web("owner").post(
        "/private-team/members/", {"action": "remove", "membership": foreign.pk}
    )

    assert response.status_code == 404
    assert Membership.objects.filter(pk=foreign.pk).exists()


# -- settings and delete -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "status"), [(None, 404), ("outsider", 404), ("member", 403), ("maintainer", 403)]
)
def test_only_owners_change_settings(web, private_channel, who, status):
    response = web(who).post("/private-team/settings/", {"description": "changed"})

    assert response.status_code == status
    private_channel.refresh_from_db()
    assert private_channel.description == "Ours" and private_channel.private


def test_owners_change_description_visibility_and_related_channels(
    web, private_channel, public_channel
):
    response = web("owner").post(
        "/private-team/settings/",
        {
            "description": "Robotics libraries",
            "related_channels": "https://conda.anaconda.org/conda-forge/\nopen-tools\n",
        },
    )

    assert response.status_code == 302
    private_channel.refresh_from_db()
    assert private_channel.description == "Robotics libraries"
    assert not private_channel.private  # an unchecked box makes the channel public
    related = [(r.target_id, r.url) for r in private_channel.related.all()]
    assert related == [(None, "https://conda.anaconda.org/conda-forge"), (public_channel.pk, "")]
    page = text(web("owner").get("/private-team/settings/"))
    assert "https://conda.anaconda.org/conda-forge\nopen-tools" in page


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("secret-lab", "No channel &#x27;secret-lab&#x27; here."),
        ("nowhere", "No channel &#x27;nowhere&#x27; here."),
        ("private-team", "is this channel itself"),
        ("ftp://mirror.example.org/x", "is not an http(s) channel URL"),
        ("open-tools\nopen-tools", "is listed twice"),
    ],
)
def test_bad_related_channels_are_refused_and_nothing_changes(
    web, private_channel, public_channel, others_private_channel, line, message
):
    RelatedChannel.objects.create(channel=private_channel, position=0, target=public_channel)

    response = web("owner").post(
        "/private-team/settings/",
        {"description": "changed", "private": "on", "related_channels": line},
    )

    assert response.status_code == 400
    assert message in text(response)
    private_channel.refresh_from_db()
    assert private_channel.description == "Ours"
    assert [r.target_id for r in private_channel.related.all()] == [public_channel.pk]


@pytest.mark.django_db(transaction=True)
def test_deleting_a_channel_needs_its_name_typed(web, client_for, private_channel, packages):
    upload(client_for("owner"), "private-team", packages.make("doomed"))
    wait_for_index(private_channel, "noarch")
    stored = PackageFile.objects.get().storage_path

    wrong = web("owner").post("/private-team/delete/", {"confirm": "private"})
    assert wrong.status_code == 400 and "Type &#x27;private-team&#x27; exactly" in text(wrong)
    assert Channel.objects.filter(name="private-team").exists()
    assert default_storage.exists(stored)

    right = web("owner").post("/private-team/delete/", {"confirm": "private-team"})
    assert right.status_code == 302 and right["Location"] == "/channels/"
    assert not Channel.objects.filter(name="private-team").exists()
    assert not default_storage.exists(stored)


@pytest.mark.parametrize(
    ("who", "status"), [(None, 404), ("outsider", 404), ("member", 403), ("maintainer", 403)]
)
def test_only_owners_delete_a_channel(web, private_channel, who, status):
    response = web(who).post("/private-team/delete/", {"confirm": "private-team"})

    assert response.status_code == status
    assert Channel.objects.filter(name="private-team").exists()


def test_delete_is_post_only(web, private_channel):
    assert web("owner").get("/private-team/delete/").status_code == 405


# -- error pages -------------------------------------------------------------------------


def test_the_403_page_says_what_is_not_allowed(web, private_channel):
    response = web("member").get("/private-team/settings/")

    assert response.status_code == 403
    assert "You may not manage in channel &#x27;private-team&#x27; as member." in text(response)
    assert "<title>Not allowed · Wharf</title>" in text(response)


def test_the_500_page_renders_without_a_database(client):
    from django.template import loader

    html = loader.get_template("500.html").render()
    assert "Something went wrong" in html and "Nothing you uploaded is lost" in html


def test_a_form_posted_without_its_csrf_token_gets_the_friendly_page(web, private_channel):
    response = web("owner", enforce_csrf_checks=True).post(
        "/private-team/settings/", {"description": "forged"}
    )

    assert response.status_code == 403
    assert "This form has expired" in text(response)
    private_channel.refresh_from_db()
    assert private_channel.description == "Ours"
