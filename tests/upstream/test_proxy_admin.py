"""Proxy channels in the Django admin: site administrators create them; owners see where
their packages come from, never the upstream's credentials."""

import pytest

from channels_app.models import Channel, Upstream

from ..admin import signed_in
from .conftest import make_proxy

pytestmark = pytest.mark.django_db
CHANNELS = "/admin/channels_app/channel/"


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.org", "pw-root")


def test_a_site_admin_creates_a_proxy_channel_in_the_admin(client, superuser, upstream_networks):
    signed_in(client, superuser)
    response = client.post(
        f"{CHANNELS}add/",
        {"name": "forge", "upstream_mode": "proxy", "upstream_url": "http://127.0.0.1:9/cf/"},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    channel = Channel.objects.get(name="forge")
    assert channel.kind == "proxy"
    assert Upstream.objects.get(channel=channel).url == "http://127.0.0.1:9/cf"


def test_the_admin_refuses_an_upstream_on_a_private_network(client, superuser):
    signed_in(client, superuser)
    response = client.post(
        f"{CHANNELS}add/",
        {"name": "forge", "upstream_mode": "proxy", "upstream_url": "http://127.0.0.1:9/cf"},
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["upstream_url"]
    assert "WHARF_UPSTREAM_PRIVATE_NETWORKS" in errors[0]
    assert not Channel.objects.filter(name="forge").exists()


def test_an_owner_sees_the_upstream_but_never_its_credentials(client, users, upstream_networks):
    make_proxy(users["owner"], "forge", "http://127.0.0.1:9/cf", token="s3cret-token")
    signed_in(client, users["owner"])
    page = client.get(f"{CHANNELS}{Channel.objects.get(name='forge').pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "http://127.0.0.1:9/cf" in text and "a token (kept server-side" in text
    assert "s3cret" not in text
    add = client.get(f"{CHANNELS}add/").content.decode()
    assert "upstream_url" not in add  # owners create hosted channels only


def test_a_site_admin_creates_a_proxy_channel_from_the_web_page(
    client, superuser, upstream_networks
):
    client.force_login(superuser)
    assert "Upstream channel" in client.get("/channels/new/").content.decode()
    response = client.post(
        "/channels/new/", {"name": "forge", "upstream_url": "http://127.0.0.1:9/cf"}
    )
    assert response.status_code == 302
    assert Channel.objects.get(name="forge").kind == "proxy"


def test_the_web_page_offers_no_upstream_to_other_users(client, users, upstream_networks):
    client.force_login(users["owner"])
    assert "Upstream channel" not in client.get("/channels/new/").content.decode()
    response = client.post(
        "/channels/new/", {"name": "forge", "upstream_url": "http://127.0.0.1:9/cf"}
    )
    assert response.status_code == 400
    assert "Only site administrators create proxy and mirror channels." in response.content.decode()
    assert not Channel.objects.filter(name="forge").exists()
