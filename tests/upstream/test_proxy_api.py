"""Creating proxy channels over REST: who may, which upstream URLs, what answers show."""

import pytest

from accounts.models import ApiToken
from channels_app.models import Channel, Upstream

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(django_user_model, client_for):
    admin = django_user_model.objects.create_superuser("root", "root@example.org", "pw-root")
    return client_for(secret=ApiToken.create_for(admin, "admin")[1])


def create(client, **fields):
    return client.post("/api/v1/channels/", fields, format="json")


def test_a_site_admin_creates_a_proxy_channel_whose_secrets_are_never_shown(
    admin_client, upstream_networks
):
    upstream = {
        "url": "http://127.0.0.1:9/conda-forge/", "mode": "proxy", "refresh_seconds": 120,
        "token": "s3cret-upstream-token",
    }  # fmt: skip
    response = create(admin_client, name="conda-forge", private=False, upstream=upstream)

    assert response.status_code == 201, response.json()
    shown = response.json()
    assert shown["kind"] == "proxy"
    assert shown["upstream"]["url"] == "http://127.0.0.1:9/conda-forge"
    assert shown["upstream"]["refresh_seconds"] == 120
    assert shown["upstream"]["authenticated"] is True
    assert shown["upstream"]["last_refresh"] is None and shown["upstream"]["last_error"] is None
    assert "s3cret" not in response.content.decode()
    assert "s3cret" not in admin_client.get("/api/v1/channels/conda-forge/").content.decode()
    assert Upstream.objects.get(channel__name="conda-forge").token == "s3cret-upstream-token"


def test_only_site_admins_create_proxy_channels(client_for, upstream_networks):
    upstream = {"url": "http://127.0.0.1:9/forge", "mode": "proxy"}
    response = create(client_for("owner"), name="forge", upstream=upstream)
    assert response.status_code == 403
    assert "Only site administrators" in response.json()["detail"]
    assert not Channel.objects.filter(name="forge").exists()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/c",
        "http://10.1.2.3/c",
        "http://169.254.169.254/latest",
        "http://[::1]/c",
    ],
)
def test_upstreams_on_private_networks_are_refused_unless_the_site_allows_them(admin_client, url):
    response = create(admin_client, name="forge", upstream={"url": url, "mode": "proxy"})
    assert response.status_code == 400
    assert "WHARF_UPSTREAM_PRIVATE_NETWORKS" in str(response.json()["upstream"])
    assert not Channel.objects.filter(name="forge").exists()


@pytest.mark.parametrize(
    ("upstream", "complaint"),
    [
        ({"url": "ftp://example.org/c", "mode": "proxy"}, "not an http(s) URL"),
        ({"url": "https://user:pw@example.org/c", "mode": "proxy"}, "not in its URL"),
        ({"url": "https://example.org/c", "mode": "copy"}, '"proxy" or "mirror"'),
        ({"url": "http://127.0.0.1/c", "mode": "proxy", "refresh_seconds": 1}, "at least 10"),
        ({"url": "http://127.0.0.1/c", "mode": "proxy", "include": ["numpy"]}, "only a mirror"),
        ({"url": "http://127.0.0.1/c", "mode": "proxy", "colour": "red"}, "Unknown upstream"),
        ({"url": "https://no-such-host.invalid/c", "mode": "proxy"}, "does not resolve"),
        (
            {"url": "http://127.0.0.1/c", "mode": "mirror", "platforms": ["linux-65"]},
            "unknown subdir 'linux-65'",
        ),
        (
            {"url": "http://127.0.0.1/c", "mode": "mirror", "include": ["numpy >=>1"]},
            "'numpy >=>1' is not a package name or match spec",
        ),
        (
            {"url": "http://127.0.0.1/c", "mode": "mirror", "exclude": ["conda-forge::numpy"]},
            "names a channel",
        ),
        ({"url": "http://127.0.0.1/c", "mode": "mirror", "keep_versions": 0}, "at least 1"),
    ],
)
def test_a_bad_upstream_is_a_400_naming_the_problem(
    admin_client, upstream_networks, upstream, complaint
):
    response = create(admin_client, name="forge", upstream=upstream)
    assert response.status_code == 400
    assert complaint in str(response.json()["upstream"])


def test_uploads_to_a_proxy_channel_are_refused_for_every_protocol(
    admin_client, upstream_networks, client_for, users
):
    upstream = {"url": "http://127.0.0.1:9/forge", "mode": "proxy"}
    assert create(admin_client, name="forge", upstream=upstream).status_code == 201
    root = client_for(secret=admin_client._credentials["HTTP_AUTHORIZATION"].split()[1])
    put = root.put("/forge/noarch/x-1.0-0.conda", b"bytes", content_type="application/octet-stream")
    assert put.status_code == 409
    assert "takes no uploads" in put.json()["detail"]
