"""Mirror channels: runs copy what the filters select from an upstream channel into a
channel of Wharf's own, indexed as uploads are."""

import json

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from channels_app.lifecycle import create_channel
from channels_app.sources import attach
from packages_app import runner
from packages_app.models import MirrorRun, PackageFile
from packages_app.upstream import mirror

from ..packages import eventually, sha256_of, upload
from .static import Quiet
from .test_proxy import body

pytestmark = pytest.mark.django_db(transaction=True)


def package_requests():
    return len([path for _, path in Quiet.requests if path.endswith(".conda")])


def make_mirror(owner, url, name="mirror", private=False, **upstream):
    with transaction.atomic():  # as the API and the admin create one
        channel = create_channel(owner, name, private=private, kind="mirror")
        attach(channel, upstream={"url": url, **upstream})
    runner.wait_for_background_work()  # its first run, started on creation

    def first_run_ended():  # in services mode on a worker
        assert MirrorRun.objects.filter(channel=channel).exclude(state="running").exists()

    eventually(first_run_ended)
    channel.refresh_from_db()
    return channel


def held(channel):
    return set(PackageFile.objects.filter(channel=channel).values_list("subdir", "filename"))


def served(client, channel, subdir="noarch"):
    response = client.get(f"/{channel}/{subdir}/repodata.json")
    assert response.status_code == 200, body(response)
    return set(json.loads(body(response))["packages.conda"])


@pytest.fixture
def forge(static_upstream):
    """An upstream with several names, versions and two subdirs."""
    made = {}
    for name, version, subdir in [
        ("tool", "1.0", "noarch"), ("tool", "2.0", "noarch"), ("tool", "3.0", "noarch"),
        ("libfoo", "1.0", "linux-64"), ("libbar", "1.0", "linux-64"),
        ("other", "1.0", "noarch"),
    ]:  # fmt: skip
        made[(name, version)] = static_upstream.add(name, version, subdir)
    static_upstream.index()
    static_upstream.made = made
    return static_upstream


def test_a_run_copies_what_the_filters_select(users, forge, client_for):
    channel = make_mirror(
        users["owner"], forge.url, include=["tool >=2", "lib*"], exclude=["libbar"]
    )
    run = MirrorRun.objects.get(channel=channel)
    made = forge.made
    expected = {
        ("noarch", made[("tool", "2.0")].name),
        ("noarch", made[("tool", "3.0")].name),
        ("linux-64", made[("libfoo", "1.0")].name),
    }
    assert (run.trigger, run.state) == ("schedule", "finished")
    assert held(channel) == expected
    assert (run.selected, run.to_copy, run.added, run.failed) == (3, 3, 3, 0)
    assert set(run.subdirs) == {"noarch", "linux-64"}  # every subdir the upstream has
    copied = PackageFile.objects.get(channel=channel, filename=made[("libfoo", "1.0")].name)
    assert copied.sha256 == sha256_of(made[("libfoo", "1.0")])
    assert copied.uploader is None
    client = client_for("outsider")
    assert served(client, "mirror") == {made[("tool", "2.0")].name, made[("tool", "3.0")].name}
    assert served(client, "mirror", "linux-64") == {made[("libfoo", "1.0")].name}
    channel.upstream.refresh_from_db()
    assert channel.upstream.last_refresh is not None and channel.upstream.last_error == ""


def test_keep_versions_keeps_the_newest_and_removal_follows_the_upstream(users, forge):
    channel = make_mirror(
        users["owner"], forge.url, platforms=["noarch"], include=["tool"], keep_versions=2,
        remove_missing=True,
    )  # fmt: skip
    made = forge.made
    assert held(channel) == {("noarch", made[("tool", v)].name) for v in ("2.0", "3.0")}

    newer = forge.add("tool", "4.0")
    forge.index()
    run = mirror.sync(channel)
    assert (run.added, run.removed, run.state) == (1, 1, "finished")
    assert held(channel) == {("noarch", made[("tool", "3.0")].name), ("noarch", newer.name)}


def test_without_removal_a_file_the_upstream_drops_stays(users, forge):
    channel = make_mirror(users["owner"], forge.url, platforms=["noarch"], include=["other"])
    forge.made[("other", "1.0")].unlink()
    forge.index()
    run = mirror.sync(channel)
    assert (run.selected, run.removed, run.added) == (0, 0, 0)
    assert held(channel) == {("noarch", forge.made[("other", "1.0")].name)}


def test_a_second_run_copies_only_what_is_new(users, forge):
    channel = make_mirror(users["owner"], forge.url, platforms=["noarch"])
    first = MirrorRun.objects.get(channel=channel)
    assert first.added == 4
    forge.add("fresh", "1.0")
    forge.index()
    before = package_requests()
    run = mirror.sync(channel, trigger="command")
    assert (run.selected, run.to_copy, run.added) == (5, 1, 1)
    assert package_requests() == before + 1  # the others were not fetched


def test_an_unchanged_upstream_index_is_not_read_again_unless_the_filters_change(users, forge):
    channel = make_mirror(users["owner"], forge.url, platforms=["noarch"], include=["tool"])
    assert MirrorRun.objects.get(channel=channel).validators["noarch"]["last_modified"]
    Quiet.requests.clear()
    run = mirror.sync(channel)
    assert (run.state, run.unchanged, run.subdirs, run.selected) == ("finished", ["noarch"], [], 0)
    assert [p for _, p in Quiet.requests] == ["/noarch/repodata.json"]  # answered 304
    assert run.validators == MirrorRun.objects.exclude(pk=run.pk).get().validators

    channel.upstream.include = ["tool", "other"]
    channel.upstream.save()
    run = mirror.sync(channel)
    assert (run.unchanged, run.subdirs, run.added) == ([], ["noarch"], 1)
    PackageFile.objects.filter(channel=channel, name="other").delete()
    assert mirror.sync(channel).unchanged == ["noarch"]
    assert mirror.sync(channel, full=True).added == 1  # copied again


def test_a_file_whose_bytes_differ_from_the_upstream_index_is_not_kept(users, forge):
    target = forge.made[("other", "1.0")]
    target.write_bytes(target.read_bytes()[:-10] + b"0123456789")  # after indexing
    channel = make_mirror(users["owner"], forge.url, platforms=["noarch"])
    run = MirrorRun.objects.get(channel=channel)
    assert run.state == "failed"
    assert run.added == 3 and run.failed == 1
    reason = run.failures[f"noarch/{target.name}"]
    assert "sha256" in reason and "Nothing was kept" in reason
    assert ("noarch", target.name) not in held(channel)
    channel.upstream.refresh_from_db()
    assert "1 files or subdirs not copied" in channel.upstream.last_error


def test_an_upstream_that_is_down_fails_the_run_and_keeps_the_copy(users, forge, client_for):
    channel = make_mirror(users["owner"], forge.url, platforms=["noarch"])
    before = held(channel)
    forge.server.down = True
    run = mirror.sync(channel)
    assert run.state == "failed"
    assert "HTTP 503" in run.failures["noarch"]
    assert held(channel) == before
    assert len(served(client_for("outsider"), "mirror")) == 4


def test_uploads_to_a_mirror_are_refused(users, forge, client_for, packages):
    make_mirror(users["owner"], forge.url, platforms=["noarch"])
    response = upload(client_for("owner"), "mirror", packages.make("mine"))
    assert response.status_code == 409
    assert "mirror of" in response.json()["detail"]


def test_the_command_shows_the_run_and_fails_when_files_failed(users, forge, capsys):
    channel = make_mirror(users["owner"], forge.url, platforms=["noarch"], include=["tool"])
    forge.add("tool", "5.0")
    forge.index()
    call_command("sync_mirror", "mirror")
    out = capsys.readouterr().out
    assert f"Mirroring {forge.url} into 'mirror'." in out
    assert "1 copied" in out or "1/1 files" in out
    assert "subdirs noarch; 4 files selected upstream, 1 copied" in out

    forge.server.down = True
    with pytest.raises(CommandError, match="failed: 1 files or subdirs not copied"):
        call_command("sync_mirror", "mirror")
    with pytest.raises(CommandError, match="not a mirror"):
        create_channel(users["owner"], "plain")
        call_command("sync_mirror", "plain")
    assert MirrorRun.objects.filter(channel=channel).count() == 3


def test_mirror_runs_go_to_a_queue_of_their_own_with_a_long_time_limit(settings):
    from packages_app.tasks import rebuild_subdir_index, run_mirror
    from registry.celery import app

    def queue(task):
        return app.amqp.router.route({}, task.name)["queue"].name

    assert queue(run_mirror) == "mirrors" and queue(rebuild_subdir_index) == "celery"
    assert run_mirror.soft_time_limit == settings.WHARF_MIRROR_RUN_SECONDS == 6 * 3600
    assert run_mirror.acks_late is False  # a killed run is resumed by the scheduler
