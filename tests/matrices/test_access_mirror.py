"""The access matrix for a private mirror channel's runs: only its readers see them, only
its owners start one; everyone else learns nothing of it."""

import pytest

from channels_app.models import Channel, Membership, Role
from packages_app import runner
from packages_app.models import MirrorRun

from ..packages import eventually
from ..upstream import test_mirror_api
from .test_access import CALLERS, PRIVATE_READ, assert_answer

pytestmark = pytest.mark.django_db(transaction=True)
MANAGE = {**PRIVATE_READ, "member": 403, "maintainer": 403, "owner": 202, "read-only": 403}


admin = test_mirror_api.admin
upstream = test_mirror_api.upstream


@pytest.fixture
def private_mirror(admin, upstream, users):
    test_mirror_api.create_mirror(
        admin, "secret-mirror", upstream.url, private=True, platforms=["noarch"]
    )
    runner.wait_for_background_work()
    channel = Channel.objects.get(name="secret-mirror")

    def copied():
        assert MirrorRun.objects.filter(channel=channel, state="finished").exists()

    eventually(copied)
    for who, role in (("owner", Role.OWNER), ("maintainer", Role.MAINTAINER),
                      ("member", Role.MEMBER)):  # fmt: skip
        Membership.objects.create(channel=channel, user=users[who], role=role)
    return channel


@pytest.mark.parametrize(
    ("who", "status"), [pytest.param(w, PRIVATE_READ[w], id=w) for w in CALLERS]
)
def test_only_readers_see_a_private_mirrors_runs(who, status, client_as, private_mirror):
    response = client_as(who).get("/api/v1/channels/secret-mirror/mirror-runs/")
    assert_answer(response, status, "secret-mirror")
    run = MirrorRun.objects.get(channel=private_mirror)
    detail = client_as(who).get(f"/api/v1/channels/secret-mirror/mirror-runs/{run.pk}/")
    assert_answer(detail, status, "secret-mirror")


@pytest.mark.parametrize(("who", "status"), [pytest.param(w, MANAGE[w], id=w) for w in CALLERS])
def test_only_owners_start_a_run_of_a_private_mirror(who, status, client_as, private_mirror):
    response = client_as(who).post("/api/v1/channels/secret-mirror/mirror-runs/")
    assert_answer(response, status, "secret-mirror")
    runner.wait_for_background_work()

    def ended():  # the run an owner started (on a worker in services mode)
        runs = MirrorRun.objects.filter(channel=private_mirror)
        assert runs.count() == (2 if status == 202 else 1)
        assert not runs.filter(state="running").exists()

    eventually(ended)
