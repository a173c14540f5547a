"""CSRF: every post form of the templates carries Django's token, and every web form refuses
a post without it and changes nothing.
"""

import re

import pytest
from django.test import Client

from accounts.models import ApiToken
from channels_app.models import Membership
from packages_app.models import PackageFile

from ..deployment import ROOT
from ..packages import catalog_file

# A form's body: an HTML form, or allauth's {% element form %} up to its body slot's end.
POST_FORMS = [
    re.compile(r"<form\b[^>]*method=\"post\"[^>]*>(.*?)</form>", re.S | re.I),
    re.compile(r"{% element form [^%]*method=\"post\"[^%]*%}(.*?){% endslot %}", re.S),
]


def templates_with_forms():
    return [
        pytest.param(path, id=str(path.relative_to(ROOT / "templates")))
        for path in sorted((ROOT / "templates").rglob("*.html"))
        if 'method="post"' in path.read_text().lower()
    ]


@pytest.mark.parametrize("path", templates_with_forms())
def test_every_post_form_carries_a_csrf_token(path):
    forms = [form for pattern in POST_FORMS for form in pattern.findall(path.read_text())]

    assert forms
    assert all("{% csrf_token %}" in form for form in forms)


@pytest.fixture
def owner_web(users):
    client = Client(enforce_csrf_checks=True)
    client.force_login(users["owner"])
    return client


@pytest.mark.django_db
def test_every_web_form_refuses_a_post_without_its_csrf_token(owner_web, users, private_channel):
    key, _ = ApiToken.create_for(users["owner"], "kept")
    membership = Membership.objects.get(channel=private_channel, user=users["member"])
    package_file = catalog_file(private_channel, "noarch", "kept", "1.0")
    forms = {
        "/channels/new/": {"name": "forged"},
        "/private-team/members/": {"action": "remove", "membership": membership.pk},
        "/private-team/settings/": {"description": "forged"},
        "/private-team/delete/": {"confirm": "private-team"},
        f"/private-team/packages/kept/files/noarch/{package_file.filename}/delete/": {},
        "/settings/keys/": {"name": "forged", "expiry": "never"},
        f"/settings/keys/{key.pk}/revoke/": {},
        "/accounts/logout/": {},
        "/api/v1/channels/": {"name": "forged-too"},
        f"/admin/channels_app/channel/{private_channel.pk}/delete/": {"post": "yes"},
    }

    for url, data in forms.items():
        assert owner_web.post(url, data).status_code == 403, url

    private_channel.refresh_from_db()
    assert private_channel.description == "Ours"
    assert Membership.objects.filter(pk=membership.pk).exists()
    assert PackageFile.objects.filter(pk=package_file.pk).exists()
    assert list(ApiToken.objects.filter(user=users["owner"])) == [key]
    key.refresh_from_db()
    assert key.revoked_at is None
    assert owner_web.get("/settings/").status_code == 200  # still signed in
