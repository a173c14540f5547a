"""After a member publishes, a combined channel's shard index is new at once, while its
repodata.json is built in the background: meanwhile the one of the state before is served
(stale-while-revalidate), never a 503."""

import time

import orjson
import pytest

from accounts.models import ApiToken
from channels_app.models import Membership, Role
from packages_app.combined import cache
from packages_app.index import repodata
from packages_app.models import CombinedIndex

from ..published import body
from .conftest import COMBINED

pytestmark = pytest.mark.django_db(transaction=True)

REPODATA = f"/{COMBINED}/noarch/repodata.json"
SHARD_INDEX = f"/{COMBINED}/noarch/repodata_shards.msgpack.zst"


def files_of(response):
    document = orjson.loads(body(response))
    return set(document["packages"]) | set(document["packages.conda"])


def wait_for_documents(row, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row.refresh_from_db()
        if repodata.REPODATA in row.files and not row.lease_owner:
            return
        time.sleep(0.05)
    raise AssertionError("the documents were not built in the background")


@pytest.fixture
def changed(client_for, team_all, team, publish_to, built_elsewhere):
    """team-all's repodata.json served once, then a new package in team: the shard index
    asked for, so the new state's entry exists without its repodata.json."""
    first = publish_to(team, "tool", "1.0")
    client = client_for("member")
    before = client.get(REPODATA)
    added = publish_to(team, "tool", "2.0")
    assert client.get(SHARD_INDEX).status_code == 200
    new = CombinedIndex.objects.exclude(files__has_key=repodata.REPODATA).get()
    return {
        "client": client, "before": before, "first": first, "added": added, "new": new,
        "built_elsewhere": built_elsewhere,
    }  # fmt: skip


def test_the_shard_index_is_new_before_repodata_json_is_built(changed):
    assert set(changed["new"].files) == {repodata.SHARD_INDEX}


def test_the_older_repodata_json_is_served_while_another_process_builds_the_new(changed):
    changed["built_elsewhere"](changed["new"])
    started = time.monotonic()

    response = changed["client"].get(REPODATA)

    assert response.status_code == 200
    assert response["ETag"] == changed["before"]["ETag"]
    assert files_of(response) == {changed["first"].name}
    assert time.monotonic() - started < cache.FRESH_SECONDS + 1


def test_a_build_that_lapsed_is_sent_again_and_its_result_served(changed, monkeypatch):
    changed["built_elsewhere"](changed["new"], seconds=-1)  # its builder died
    monkeypatch.setattr(cache, "FRESH_SECONDS", 0)

    stale = changed["client"].get(REPODATA)
    wait_for_documents(changed["new"])
    fresh = changed["client"].get(REPODATA)

    assert stale["ETag"] == changed["before"]["ETag"]
    assert files_of(fresh) == {changed["first"].name, changed["added"].name}


def test_a_request_waits_a_moment_for_a_build_that_finishes_in_it(changed, monkeypatch):
    monkeypatch.setattr(cache, "FRESH_SECONDS", 20)

    response = changed["client"].get(REPODATA)

    assert files_of(response) == {changed["first"].name, changed["added"].name}


def test_staleness_is_bounded_the_request_then_builds(changed, monkeypatch):
    monkeypatch.setattr(cache, "FRESH_SECONDS", 0)
    monkeypatch.setattr(cache, "STALE_SECONDS", 0)

    response = changed["client"].get(REPODATA)

    assert files_of(response) == {changed["first"].name, changed["added"].name}


@pytest.mark.parametrize("path", [REPODATA, SHARD_INDEX])
def test_no_503_while_an_older_entry_can_answer(path, changed, monkeypatch):
    # The new state's entry is being built by another process, which takes too long.
    changed["built_elsewhere"](changed["new"], built_at=None, files={})
    monkeypatch.setattr(cache, "WAIT_SECONDS", 0.3)
    monkeypatch.setattr(cache, "STALE_SECONDS", 0)

    response = changed["client"].get(path)

    assert response.status_code == 200
    if path == REPODATA:
        assert response["ETag"] == changed["before"]["ETag"]


def test_only_an_older_entry_of_the_same_members_answers(
    client_for, team_all, team, forge, publish_to, django_user_model, built_elsewhere, monkeypatch
):
    publish_to(team, "tool", "1.0")
    publish_to(forge, "other", "1.0")
    assert client_for("member").get(REPODATA).status_code == 200  # reads team and forge
    # A member of team-all alone reads forge only: its entries are its own.
    alone = django_user_model.objects.create_user("alone", "alone@example.org", "pw")
    Membership.objects.create(channel=team_all, user=alone, role=Role.MEMBER)
    client = client_for(secret=ApiToken.create_for(alone, "t")[1])
    assert client.get(SHARD_INDEX).status_code == 200
    built_elsewhere(CombinedIndex.objects.exclude(files__has_key=repodata.REPODATA).get())
    monkeypatch.setattr(cache, "WAIT_SECONDS", 0.3)

    response = client.get(REPODATA)

    assert response.status_code == 503  # the other members' entry is no answer for it
