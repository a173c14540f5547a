"""Mirror channels in the web UI and the Django admin: created by site administrators,
their runs on the channel page, a run started by an owner, filters changed in the admin."""

import pytest

from channels_app.models import Channel, Upstream
from packages_app import runner
from packages_app.models import MirrorRun

from ..admin import signed_in
from ..packages import eventually
from .test_mirror import make_mirror

pytestmark = pytest.mark.django_db(transaction=True)
CHANNELS = "/admin/channels_app/channel/"


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.org", "pw-root")


@pytest.fixture
def upstream(static_upstream):
    static_upstream.add("tool", "1.0")
    static_upstream.add("other", "1.0")
    static_upstream.index()
    return static_upstream


def finished_runs(channel):
    runner.wait_for_background_work()

    def check():
        runs = MirrorRun.objects.filter(channel=channel)
        assert runs.exists() and not runs.filter(state="running").exists()
        return list(runs)

    return eventually(check)


def new_mirror(client, upstream, include):
    fields = {"name": "copy", "upstream_url": upstream.url, "upstream_mode": "mirror"}
    return client.post("/channels/new/", {**fields, "upstream_include": include})


def test_a_site_admin_creates_a_mirror_from_the_web_page(client, superuser, upstream):
    client.force_login(superuser)
    response = new_mirror(client, upstream, "tool\n\n")
    assert response.status_code == 302
    channel = Channel.objects.get(name="copy")
    assert channel.kind == "mirror" and channel.upstream.include == ["tool"]
    (run,) = finished_runs(channel)
    assert run.added == 1

    page = client.get("/copy/").content.decode()
    assert f'Mirror of <a href="{upstream.url}"' in page
    assert "Mirror runs" in page and "Copies tool, for every platform" in page
    assert '<span class="badge">finished</span>' in page and "Run now" in page


def test_a_bad_match_spec_on_the_web_page_is_named(client, superuser, upstream):
    client.force_login(superuser)
    response = new_mirror(client, upstream, "numpy >=>1")
    assert response.status_code == 400
    assert "&#x27;numpy &gt;=&gt;1&#x27; is not a package name or match spec" in (
        response.content.decode()
    )
    assert not Channel.objects.filter(name="copy").exists()


def test_an_owner_starts_a_run_from_the_page_and_readers_cannot(client, users, upstream):
    channel = make_mirror(users["owner"], upstream.url, platforms=["noarch"])
    upstream.add("fresh", "1.0")
    upstream.index()
    client.force_login(users["outsider"])
    assert "Run now" not in client.get("/mirror/").content.decode()
    assert client.post("/mirror/mirror-runs/").status_code == 403
    client.force_login(users["owner"])
    response = client.post("/mirror/mirror-runs/", follow=True)
    assert "A mirror run was started" in response.content.decode()
    runs = finished_runs(channel)
    assert len(runs) == 2 and runs[0].added == 1 and runs[0].started_by == users["owner"]


def test_an_admin_changes_a_mirrors_filters_checked_as_the_api_does(client, superuser, upstream):
    channel = make_mirror(superuser, upstream.url, platforms=["noarch"])
    signed_in(client, superuser)
    url = f"{CHANNELS}{channel.pk}/change/"
    form = client.get(url).context["adminform"].form
    data = {name: form.initial.get(name, "") for name in ("name", "description")}
    data.update({
        "upstream-TOTAL_FORMS": "1", "upstream-INITIAL_FORMS": "1",
        "upstream-MIN_NUM_FORMS": "0", "upstream-MAX_NUM_FORMS": "1",
        "upstream-0-id": channel.upstream.pk, "upstream-0-channel": channel.pk,
        "upstream-0-refresh_seconds": "600", "upstream-0-platforms": '["noarch"]',
        "upstream-0-include": '["lib*"]', "upstream-0-exclude": '["lib >=>1"]',
        "upstream-0-keep_versions": "",
        "related-TOTAL_FORMS": "0", "related-INITIAL_FORMS": "0",
        "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0",
    })  # fmt: skip
    refused = client.post(url, data)
    assert refused.status_code == 200
    assert "is not a package name or match spec" in refused.content.decode()
    assert Upstream.objects.get(channel=channel).include == []

    data["upstream-0-exclude"] = "[]"
    saved = client.post(url, data)
    assert saved.status_code == 302, saved.content.decode()[:3000]
    assert Upstream.objects.get(channel=channel).include == ["lib*"]
