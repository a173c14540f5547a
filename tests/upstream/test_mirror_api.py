"""Mirror channels over REST: creation (the first run starts), the runs and who sees
them, starting a run; a private mirror's runs leak nothing."""

import pytest

from accounts.models import ApiToken
from channels_app.models import Channel, Membership, Role
from packages_app import runner
from packages_app.models import MirrorRun

from ..packages import eventually

pytestmark = pytest.mark.django_db(transaction=True)


def create_mirror(admin, name, url, private=False, **upstream):
    body = {
        "name": name,
        "private": private,
        "upstream": {"url": url, "mode": "mirror", **upstream},
    }
    response = admin.post("/api/v1/channels/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.fixture
def admin(django_user_model, client_for):
    user = django_user_model.objects.create_superuser("root", "root@example.org", "pw-root")
    return client_for(secret=ApiToken.create_for(user, "admin")[1])


@pytest.fixture
def upstream(static_upstream):
    static_upstream.add("tool", "1.0")
    static_upstream.add("tool", "2.0")
    static_upstream.add("other", "1.0")
    static_upstream.index()
    return static_upstream


def runs(client, name="forge-mirror"):
    response = client.get(f"/api/v1/channels/{name}/mirror-runs/")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def ended(client, count=1):
    def check():
        found = runs(client)
        assert len(found) == count and found[0]["state"] != "running"
        return found

    runner.wait_for_background_work()
    return eventually(check)


def test_a_site_admin_creates_a_mirror_and_its_first_run_copies_it(admin, upstream, client_for):
    body = {
        "name": "forge-mirror", "private": False,
        "upstream": {"url": upstream.url, "mode": "mirror", "platforms": ["noarch"],
                     "include": ["tool"], "keep_versions": 1, "remove_missing": True},
    }  # fmt: skip
    response = admin.post("/api/v1/channels/", body, format="json")
    assert response.status_code == 201, response.json()
    shown = response.json()["upstream"]
    assert shown["mode"] == "mirror" and shown["include"] == ["tool"]
    assert shown["platforms"] == ["noarch"] and shown["keep_versions"] == 1
    assert shown["remove_missing"] is True

    (run,) = ended(admin)
    assert run["trigger"] == "schedule" and run["state"] == "finished"
    assert (run["selected"], run["added"], run["failed"]) == (1, 1, 0)
    assert run["subdirs"] == ["noarch"] and run["failures"] == {}
    files = client_for("outsider").get("/api/v1/channels/forge-mirror/files/").json()["results"]
    assert [f["filename"] for f in files] == ["tool-2.0-0.conda"]
    detail = admin.get(f"/api/v1/channels/forge-mirror/mirror-runs/{run['id']}/")
    assert detail.status_code == 200 and detail.json()["added"] == 1


def test_an_owner_starts_a_run_and_sees_it_in_the_list(admin, upstream, users, client_for):
    body = {"name": "forge-mirror", "upstream": {"url": upstream.url, "mode": "mirror"}}
    assert admin.post("/api/v1/channels/", body, format="json").status_code == 201
    ended(admin)
    channel = Channel.objects.get(name="forge-mirror")
    Membership.objects.create(channel=channel, user=users["owner"], role=Role.OWNER)
    upstream.add("fresh", "1.0")
    upstream.index()
    owner = client_for("owner")
    started = owner.post("/api/v1/channels/forge-mirror/mirror-runs/")
    assert started.status_code == 202, started.content
    latest = ended(owner, count=2)[0]
    assert (latest["trigger"], latest["started_by"], latest["added"]) == ("api", "owner", 1)
    assert MirrorRun.objects.filter(channel=channel).count() == 2


def test_runs_of_a_hosted_channel_are_a_404_naming_its_kind(client_for, public_channel):
    response = client_for("owner").get(f"/api/v1/channels/{public_channel.name}/mirror-runs/")
    assert response.status_code == 404
    assert "hosted channel, not a mirror" in response.json()["detail"]
