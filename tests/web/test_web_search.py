"""The search page: every channel the visitor may read, ranked, filtered and paged."""

import re

import pytest
from pytest_django.asserts import assertContains, assertNotContains

from channels_app.lifecycle import create_channel
from packages_app.discovery import catalog

from ..packages import catalog_file

pytestmark = pytest.mark.django_db


def add_package(channel, name, version="1.0", subdirs=("noarch",), summary=""):
    """Package files as an upload records them, and the catalog refreshed from them."""
    for subdir in subdirs:
        catalog_file(channel, subdir, name, version, summary=summary)
    catalog.refresh(channel, [name])


def found(response):
    """(channel, package) of each result, in the order shown."""
    assert response.status_code == 200
    html = response.content.decode()
    results = html[html.index('aria-label="Search results"') :] if "Search results" in html else ""
    return re.findall(r'<a href="/([^/"]+)/packages/([^/"]+)/"><strong>', results)


def channel_options(response):
    html = response.content.decode()
    select = html[html.index('<select id="search-channel"') :]
    return re.findall(r'<option value="([^"]+)"', select[: select.index("</select>")])


def test_it_shows_a_hint_and_no_results_without_a_query(client, public_channel):
    add_package(public_channel, "tool")

    response = client.get("/search/")

    assertContains(response, "Type part of a package name")
    assert found(response) == []


def test_it_labels_every_field_of_its_form(client):
    html = client.get("/search/").content.decode()

    for field in ("search-q", "search-channel", "search-platform"):
        assert f'<label for="{field}">' in html
        assert f'id="{field}"' in html


def test_it_ranks_exact_names_then_prefixes_then_other_names_then_summaries(client, public_channel):
    add_package(public_channel, "mytool")
    add_package(public_channel, "toolbox")
    add_package(public_channel, "other", summary="A Tool for this")
    add_package(public_channel, "tool")
    add_package(public_channel, "unrelated", summary="nothing here")

    response = client.get("/search/", {"q": "Tool"})

    assert found(response) == [
        ("open-tools", "tool"),
        ("open-tools", "toolbox"),
        ("open-tools", "mytool"),
        ("open-tools", "other"),
    ]


def test_it_shows_channel_latest_version_summary_and_platforms(client, public_channel):
    add_package(public_channel, "tool", "1.9", ("linux-64", "osx-arm64"), "Does things")
    add_package(public_channel, "tool", "1.10", ("linux-64",), "Does things better")

    response = client.get("/search/", {"q": "tool"})

    assertContains(response, '<a href="/open-tools/">open-tools</a>', html=True)
    assertContains(response, '<span class="muted">1.10</span>', html=True)
    assertContains(response, "Does things better")
    assertContains(response, '<span class="badge">linux-64</span>', html=True)
    assertContains(response, '<span class="badge">osx-arm64</span>', html=True)


def test_it_never_shows_private_packages_to_anonymous_visitors_or_outsiders(
    client, users, public_channel, private_channel
):
    add_package(public_channel, "tool-public")
    add_package(private_channel, "tool-secret", summary="internal tool")

    anonymous = client.get("/search/", {"q": "tool"})
    by_channel = client.get("/search/", {"q": "tool", "channel": "private-team"})
    client.force_login(users["outsider"])
    outsider = client.get("/search/", {"q": "tool"})

    for response in (anonymous, outsider):
        assert found(response) == [("open-tools", "tool-public")]
        assertNotContains(response, "private-team")
        assertNotContains(response, "tool-secret")
    assert found(by_channel) == []
    assertNotContains(by_channel, "tool-secret")


def test_it_shows_members_the_private_packages_they_may_read(
    client, users, public_channel, private_channel
):
    add_package(public_channel, "tool-public")
    add_package(private_channel, "tool-secret")
    client.force_login(users["member"])

    response = client.get("/search/", {"q": "tool"})

    assert found(response) == [("open-tools", "tool-public"), ("private-team", "tool-secret")]
    assertContains(response, '<span class="badge private">private</span>', html=True)
    assert channel_options(response) == ["open-tools", "private-team"]


def test_it_filters_by_channel_and_offers_channels_with_matches(client, users, public_channel):
    other = create_channel(users["owner"], "more-tools", private=False)
    quiet = create_channel(users["owner"], "quiet", private=False)
    add_package(public_channel, "tool")
    add_package(other, "tool")
    add_package(quiet, "unrelated")

    everywhere = client.get("/search/", {"q": "tool"})
    one = client.get("/search/", {"q": "tool", "channel": "more-tools"})

    assert found(everywhere) == [("more-tools", "tool"), ("open-tools", "tool")]
    assert found(one) == [("more-tools", "tool")]
    assert channel_options(one) == ["more-tools", "open-tools"]
    assertContains(one, '<option value="more-tools" selected>more-tools</option>', html=True)


def test_it_filters_by_platform(client, public_channel):
    add_package(public_channel, "tool-linux", subdirs=("linux-64",))
    add_package(public_channel, "tool-both", subdirs=("linux-64", "osx-arm64"))
    add_package(public_channel, "tool-any", subdirs=("noarch",))

    response = client.get("/search/", {"q": "tool", "platform": "osx-arm64"})
    unknown = client.get("/search/", {"q": "tool", "platform": "no-such-os"})

    assert found(response) == [("open-tools", "tool-both")]
    assertContains(response, '<option value="osx-arm64" selected>osx-arm64</option>', html=True)
    assert len(found(unknown)) == 3


def test_it_pages_results_by_25_and_keeps_the_filters_in_page_links(client, public_channel):
    for number in range(30):
        add_package(public_channel, f"tool{number:02d}", subdirs=("linux-64",))
    query = {"q": "tool", "platform": "linux-64", "channel": "open-tools"}

    first = client.get("/search/", query)
    second = client.get("/search/", {**query, "page": 2})

    assert [name for _, name in found(first)] == [f"tool{n:02d}" for n in range(25)]
    assert [name for _, name in found(second)] == [f"tool{n:02d}" for n in range(25, 30)]
    assertContains(first, "30 packages match")
    assertContains(first, "Page 1 of 2")
    next_link = re.search(r'href="([^"]+)" rel="next"', first.content.decode()).group(1)
    assert found(client.get("/search/" + next_link.replace("&amp;", "&"))) == found(second)
    assert client.get("/search/", {**query, "page": 3}).status_code == 404
    assert client.get("/search/", {**query, "page": "x"}).status_code == 404


def test_it_says_so_when_nothing_matches(client, public_channel):
    add_package(public_channel, "tool")

    response = client.get("/search/", {"q": "zzz"})

    assertContains(response, "No packages match <strong>zzz</strong>")
    assert found(response) == []
