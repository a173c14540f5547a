"""The package page and deleting a file from it."""

import re

import orjson
import pytest
from django.template.defaultfilters import filesizeformat
from pytest_django.asserts import assertContains, assertNotContains, assertRedirects

from channels_app import related
from channels_app.lifecycle import create_channel
from packages_app.discovery import dependencies
from packages_app.models import PackageFile

from ..packages import publish, wait_for_index

uploads_and_indexes = pytest.mark.django_db(transaction=True)


def page_of(client, channel, name):
    return client.get(f"/{channel.name}/packages/{name}/")


def delete_url(channel, name, path):
    return f"/{channel.name}/packages/{name}/files/{path.parent.name}/{path.name}/delete/"


def listed_in_repodata(client_for, channel, subdir):
    response = client_for("owner").get(f"/{channel.name}/{subdir}/repodata.json")
    assert response.status_code == 200
    body = orjson.loads(b"".join(response.streaming_content))
    return set(body["packages"]) | set(body["packages.conda"])


def links(response):
    return re.findall(r'href="([^"]*)"', response.content.decode())


# Who sees a package page -----------------------------------------------------------------


@uploads_and_indexes
def test_it_hides_a_private_package_from_anonymous_visitors_and_outsiders(
    client, client_for, users, private_channel, packages
):
    publish(client_for, private_channel, packages.make("secret-tool", summary="Internal"))

    anonymous = page_of(client, private_channel, "secret-tool")
    client.force_login(users["outsider"])
    outsider = page_of(client, private_channel, "secret-tool")

    assert (anonymous.status_code, outsider.status_code) == (404, 404)
    assertNotContains(outsider, "Internal", status_code=404)


@uploads_and_indexes
def test_it_shows_a_private_package_to_members(
    client, client_for, users, private_channel, packages
):
    publish(client_for, private_channel, packages.make("secret-tool", summary="Internal"))
    client.force_login(users["member"])

    response = page_of(client, private_channel, "secret-tool")

    assertContains(response, "<h1>secret-tool")
    assertContains(response, "Internal")


@pytest.mark.django_db
def test_it_answers_404_for_a_package_the_channel_does_not_have(client, public_channel):
    assert page_of(client, public_channel, "absent").status_code == 404


# What a package page shows ------------------------------------------------------------------


@uploads_and_indexes
def test_it_lists_versions_by_conda_order_in_a_platform_matrix(
    client, client_for, public_channel, packages
):
    publish(
        client_for,
        public_channel,
        packages.make("demo", "1.9", "linux-64"),
        packages.make("demo", "1.10", "linux-64", build="h42_1"),
        packages.make("demo", "1.9", "osx-arm64", build="hab_0"),
        packages.make("demo", "1.2", "noarch"),
    )

    html = page_of(client, public_channel, "demo").content.decode()

    matrix = html[html.index('id="versions"') : html.index('id="files"')]
    heads = re.findall(r'<th scope="(?:col|row)">([^<]+)</th>', matrix)
    assert heads == ["Version", "linux-64", "noarch", "osx-arm64", "1.10", "1.9", "1.2"]
    rows = re.findall(r"<tr>(.*?)</tr>", matrix, re.S)
    assert "<code>h42_1</code>" in rows[1]
    assert "<code>h1234_0</code>" in rows[2] and "<code>hab_0</code>" in rows[2]
    assert rows[3].count("<code>") == 1  # 1.2 exists on noarch only
    assert '<h1>demo <span class="muted">1.10</span></h1>' in html


@uploads_and_indexes
def test_it_lists_each_file_with_download_link_digest_uploader_and_state(
    client, client_for, public_channel, packages
):
    path = packages.make("demo", "2.0", "linux-64")
    publish(client_for, public_channel, path)
    package_file = PackageFile.objects.get(filename=path.name)

    response = page_of(client, public_channel, "demo")

    assertContains(response, f'href="/open-tools/linux-64/{path.name}"')
    assertContains(response, package_file.sha256)
    assertContains(response, f'<data id="sha256-1" value="{package_file.sha256}"')
    assertContains(response, 'data-copy="#sha256-1"')
    assertContains(response, "by owner")
    assertContains(response, '<span class="badge ok">indexed</span>', html=True)
    assertContains(response, filesizeformat(package_file.size))
    download = client.get(f"/open-tools/linux-64/{path.name}")
    assert download.status_code == 200


@uploads_and_indexes
def test_it_renders_the_description_as_markdown_without_html_or_script_links(
    client, client_for, public_channel, packages
):
    description = (
        "# Usage\n\n**Fast** <script>alert(1)</script>\n\n"
        "[x](javascript:alert(1)) [docs](https://example.org/docs)"
    )
    path = packages.make("demo", description=description, homepage="javascript:alert(2)")
    publish(client_for, public_channel, path)
    PackageFile.objects.filter(filename=path.name).update(
        dev_url="https://example.org/src", doc_url="JavaScript:alert(3)"
    )

    response = page_of(client, public_channel, "demo")

    html = response.content.decode()
    assertContains(response, "<h1>Usage</h1>", html=True)
    assertContains(response, "<strong>Fast</strong>", html=True)
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not [link for link in links(response) if "script:" in link.lower()]
    assertContains(response, '<a href="https://example.org/docs">docs</a>', html=True)
    assertContains(response, 'href="https://example.org/src"')
    assertNotContains(response, ">Home</a>")
    assertNotContains(response, ">Documentation</a>")


@uploads_and_indexes
def test_it_links_the_home_page_when_it_is_http(client, client_for, public_channel, packages):
    publish(
        client_for, public_channel, packages.make("demo", homepage="https://demo.example/project")
    )

    response = page_of(client, public_channel, "demo")

    assertContains(
        response, '<a href="https://demo.example/project" rel="nofollow noopener">Home</a>'
    )


# Dependencies and the channels they come from ------------------------------------------


@uploads_and_indexes
def test_it_links_dependencies_into_this_channel_a_related_channel_and_conda_forge(
    client, client_for, users, public_channel, packages
):
    shared = create_channel(users["owner"], "shared-libs", private=False)
    publish(client_for, shared, packages.make("libthere", "1.0"))
    publish(client_for, public_channel, packages.make("libhere", "1.0"))
    app = packages.make(
        "app",
        depends=["libhere >=1", "libthere", "numpy >=1.20", "__glibc >=2.17"],
        constrains=["libthere <3"],
    )
    publish(client_for, public_channel, app)
    related.replace(
        public_channel, [(shared, ""), (None, "https://conda.anaconda.org/conda-forge")]
    )

    response = page_of(client, public_channel, "app")

    html = response.content.decode()
    assert 'href="/open-tools/packages/libhere/"><code>libhere &gt;=1</code>' in html
    assert 'href="/shared-libs/packages/libthere/"><code>libthere</code>' in html
    assert 'href="/shared-libs/packages/libthere/"><code>libthere &lt;3</code>' in html
    assert 'href="https://anaconda.org/conda-forge/numpy"><code>numpy &gt;=1.20</code>' in html
    assert "from https://conda.anaconda.org/conda-forge (not checked)" in html
    assert "<code>__glibc &gt;=2.17</code>" in html
    assert not [link for link in links(response) if "glibc" in link]
    assertContains(
        response,
        "micromamba create -n my-env -c http://testserver/open-tools "
        "-c http://testserver/shared-libs -c https://conda.anaconda.org/conda-forge app",
    )
    needed = html[html.index("Channels needed to install") :]
    needed = needed[: needed.index("</ol>")]
    assert re.findall(r"<li>(?:<a [^>]*>)?([^<]+)", needed) == [
        "open-tools",
        "shared-libs",
        "https://conda.anaconda.org/conda-forge ",
    ]


@uploads_and_indexes
def test_it_leaves_out_related_channels_that_provide_no_dependency(
    client, client_for, users, public_channel, packages
):
    shared = create_channel(users["owner"], "shared-libs", private=False)
    publish(client_for, shared, packages.make("unrelated", "1.0"))
    publish(client_for, public_channel, packages.make("libhere"))
    publish(client_for, public_channel, packages.make("app", depends=["libhere"]))
    related.replace(
        public_channel, [(shared, ""), (None, "https://conda.anaconda.org/conda-forge")]
    )

    response = page_of(client, public_channel, "app")

    assertContains(response, "micromamba create -n my-env -c http://testserver/open-tools app")
    assertNotContains(response, "-c http://testserver/shared-libs")
    assertContains(response, 'href="/open-tools/packages/libhere/"')


@uploads_and_indexes
def test_it_does_not_reveal_a_related_private_channel_to_visitors_who_cannot_read_it(
    client, client_for, users, public_channel, private_channel, packages
):
    publish(client_for, private_channel, packages.make("libsecret"))
    publish(client_for, public_channel, packages.make("app", depends=["libsecret"]))
    related.replace(public_channel, [(private_channel, "")])

    anonymous = page_of(client, public_channel, "app")
    client.force_login(users["member"])
    member = page_of(client, public_channel, "app")

    assertNotContains(anonymous, "private-team")
    assertContains(anonymous, "<code>libsecret</code>", html=True)
    assertContains(anonymous, "not found in this channel or its related channels")
    assertContains(member, 'href="/private-team/packages/libsecret/"')
    assertContains(member, "-c http://testserver/private-team app")


@uploads_and_indexes
def test_it_shows_a_dependency_it_cannot_parse_without_failing(
    client, client_for, public_channel, packages
):
    path = packages.make("app", depends=["libhere"])
    publish(client_for, public_channel, path)
    record = {"depends": ["py*thon >=3", 42], "constrains": "not a list"}
    PackageFile.objects.filter(filename=path.name).update(record_json=orjson.dumps(record).decode())

    response = page_of(client, public_channel, "app")

    assertContains(response, "<code>py*thon &gt;=3</code>", html=True)
    assertContains(response, "not a valid match spec")


def test_external_channels_of_known_hosts_link_to_their_package_pages():
    url = dependencies.external_package_url

    assert url("https://conda.anaconda.org/conda-forge", "numpy") == (
        "https://anaconda.org/conda-forge/numpy"
    )
    assert url("https://prefix.dev/bioconda/", "htslib") == (
        "https://prefix.dev/channels/bioconda/packages/htslib"
    )
    assert url("https://repo.prefix.dev/my-forge", "x") == (
        "https://prefix.dev/channels/my-forge/packages/x"
    )
    assert url("https://conda.example.com/forge", "numpy") is None
    assert url("https://anaconda.org", "numpy") is None


# Deleting a file -----------------------------------------------------------------------


@uploads_and_indexes
def test_it_shows_delete_buttons_only_to_those_who_may_delete(
    client, client_for, users, public_channel, packages
):
    path = packages.make("demo")
    publish(client_for, public_channel, path)
    seen = {}
    for who in ("member", "maintainer", "owner"):
        client.force_login(users[who])
        seen[who] = (
            delete_url(public_channel, "demo", path)
            in page_of(client, public_channel, "demo").content.decode()
        )
    client.logout()
    seen["anonymous"] = "/delete/" in page_of(client, public_channel, "demo").content.decode()

    assert seen == {"member": False, "maintainer": True, "owner": True, "anonymous": False}


@uploads_and_indexes
@pytest.mark.parametrize(("who", "status"), [("member", 403), ("outsider", 404), (None, 404)])
def test_only_maintainers_and_owners_may_delete_and_others_learn_nothing_of_private_channels(
    client, client_for, users, private_channel, packages, who, status
):
    path = packages.make("demo")
    publish(client_for, private_channel, path)
    if who:
        client.force_login(users[who])

    response = client.post(delete_url(private_channel, "demo", path))

    assert response.status_code == status
    assert PackageFile.objects.filter(filename=path.name).exists()


@uploads_and_indexes
def test_a_maintainer_deletes_a_file_and_it_leaves_the_repodata(
    client, client_for, users, private_channel, packages
):
    old, new = packages.make("demo", "1.0"), packages.make("demo", "2.0")
    publish(client_for, private_channel, old, new)
    assert old.name in listed_in_repodata(client_for, private_channel, "noarch")
    client.force_login(users["maintainer"])

    response = client.post(delete_url(private_channel, "demo", old), follow=True)

    assertRedirects(response, "/private-team/packages/demo/")
    assertContains(response, f"Deleted noarch/{old.name}")
    assert not PackageFile.objects.filter(filename=old.name).exists()
    wait_for_index(private_channel, "noarch")
    assert listed_in_repodata(client_for, private_channel, "noarch") == {new.name}


@uploads_and_indexes
def test_deleting_the_last_file_of_a_package_leads_to_the_channel(
    client, client_for, users, public_channel, packages
):
    path = packages.make("demo")
    publish(client_for, public_channel, path)
    client.force_login(users["maintainer"])

    response = client.post(delete_url(public_channel, "demo", path))

    assertRedirects(response, "/open-tools/", fetch_redirect_response=False)
    assert page_of(client, public_channel, "demo").status_code == 404


@uploads_and_indexes
def test_deleting_a_file_the_channel_does_not_have_is_404(
    client, client_for, users, public_channel, packages
):
    path = packages.make("demo")
    publish(client_for, public_channel, path)
    client.force_login(users["owner"])

    response = client.post(f"/open-tools/packages/demo/files/linux-64/{path.name}/delete/")

    assert response.status_code == 404
    assert PackageFile.objects.filter(filename=path.name).exists()


@pytest.mark.django_db
def test_deleting_answers_405_to_get(client, users, public_channel):
    client.force_login(users["owner"])

    response = client.get("/open-tools/packages/demo/files/noarch/demo-1.0.0-0.conda/delete/")

    assert response.status_code == 405
