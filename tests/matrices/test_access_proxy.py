"""The access matrix for a private proxy channel: its index, its package files (fetched
through or kept), its shards, its REST answers, search and uploads leak nothing to those
who may not read it."""

import pytest

from channels_app.models import Membership, Role

from ..upstream.conftest import make_proxy
from ..upstream.static import Quiet
from .test_access import CALLERS, PRIVATE_READ, assert_answer

PROXY = "private-forge"
ROUTES = {
    "repodata": "/{channel}/noarch/repodata.json",
    "shard index": "/{channel}/noarch/repodata_shards.msgpack.zst",
    "package file": "/{channel}/noarch/tool-1.0-0.conda",
    "rest channel": "/api/v1/channels/{channel}/",
    "rest packages": "/api/v1/channels/{channel}/packages/",
}
UPLOAD = {
    **PRIVATE_READ,
    "member": 403,
    "maintainer": 409,  # may upload, but not to a proxy
    "owner": 409,
    "read-only": 403,
}


@pytest.fixture
def private_proxy(users, static_upstream):
    static_upstream.add("tool")
    static_upstream.index()
    channel = make_proxy(users["owner"], PROXY, static_upstream.url, private=True)
    Membership.objects.create(channel=channel, user=users["maintainer"], role=Role.MAINTAINER)
    Membership.objects.create(channel=channel, user=users["member"], role=Role.MEMBER)
    return channel


# Transactional: the first copy of the upstream's index is fetched by another thread.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("route", "who", "status"),
    [
        pytest.param(route, who, PRIVATE_READ[who], id=f"{name}-{who}")
        for name, route in ROUTES.items()
        for who in CALLERS
    ],
)
def test_only_members_read_a_private_proxy_channel(route, who, status, client_as, private_proxy):
    Quiet.requests.clear()
    response = client_as(who).get(route.format(channel=PROXY))
    assert_answer(response, status, PROXY)
    response.close()  # a package file's relay ends here, as a server ends it
    if status != 200:
        # Refused before Wharf asked the upstream anything on the caller's behalf.
        assert Quiet.requests == []


@pytest.mark.django_db
@pytest.mark.parametrize(("who", "status"), [pytest.param(w, UPLOAD[w], id=w) for w in CALLERS])
def test_uploads_to_a_private_proxy_are_hidden_refused_or_409(
    who, status, client_as, private_proxy
):
    response = client_as(who).put(
        f"/{PROXY}/noarch/mine-1.0-0.conda", b"x", content_type="application/octet-stream"
    )
    assert_answer(response, status, PROXY)


@pytest.mark.django_db(transaction=True)
def test_search_finds_fetched_proxy_packages_only_for_members(client_as, private_proxy):
    owner = client_as("owner")
    assert owner.get(f"/{PROXY}/noarch/tool-1.0-0.conda").status_code == 200
    # The fetched file is now in the channel's catalog.

    def hits(who):
        results = client_as(who).get("/api/v1/search?q=tool").json()["results"]
        return [(r["channel"], r["name"]) for r in results]

    assert (PROXY, "tool") in hits("member")
    assert (PROXY, "tool") not in hits("outsider")
    assert (PROXY, "tool") not in hits("anonymous")
