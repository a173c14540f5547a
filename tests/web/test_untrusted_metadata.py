"""Untrusted package metadata is inert: escaped on every page that lists it, and served in
channel data files as JSON that browsers do not sniff.
"""

import pytest

from ..packages import catalog_file

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.mark.django_db
def test_package_names_and_summaries_are_escaped_on_every_listing(client, public_channel):
    catalog_file(public_channel, "noarch", "hostile", "1.0", summary=HOSTILE)
    from packages_app.discovery import catalog

    catalog.refresh(public_channel, ["hostile"])

    for url in ("/", "/open-tools/", "/search/?q=hostile", "/open-tools/packages/hostile/"):
        html = client.get(url).content.decode()
        assert "hostile" in html, url
        assert "<script>alert" not in html and "<img src=x" not in html, url
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html, url


@pytest.mark.django_db
def test_channel_data_files_are_json_that_browsers_do_not_sniff(client, public_channel):
    catalog_file(public_channel, "noarch", "hostile", "1.0", summary=HOSTILE)

    response = client.get("/open-tools/channeldata.json")

    assert response["Content-Type"] == "application/json"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.json()["packages"]["hostile"]["summary"] == HOSTILE
