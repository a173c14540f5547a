"""The unit of work of package-file changes (packages_app/files/changes.py): all or nothing,
one rebuild request per touched index, locks in their written-down order."""

import pytest

from accounts.models import AuditEvent
from packages_app.files import deleting, labels, yanking
from packages_app.files.changes import file_change
from packages_app.models import Package, PackageFile, SubdirIndex

from ..packages import publish

pytestmark = pytest.mark.django_db(transaction=True)


def revisions(channel):
    return dict(
        SubdirIndex.objects.filter(channel=channel).values_list("subdir", "requested_revision")
    )


@pytest.fixture
def two_files(client_for, public_channel, packages):
    """One indexed file in linux-64 and one in noarch, both labelled main."""
    linux = packages.make("tool", "1.0", "linux-64")
    noarch = packages.make("helper", "1.0", "noarch")
    publish(client_for, public_channel, linux, noarch)
    return [PackageFile.objects.get(filename=p.name) for p in (linux, noarch)]


def test_a_change_that_fails_keeps_nothing_of_it(public_channel, two_files, users):
    """Its edits, audit events and rebuild requests all go with the transaction."""
    before = revisions(public_channel)
    events = AuditEvent.objects.count()

    with pytest.raises(labels.LabelError), file_change(actor=users["owner"]) as change:
        for package_file in change.lock_files(PackageFile.objects.all()):
            yanking.yank(package_file, "broken build", within=change)
        labels.clean("Not A Label")  # the edit after the yanks fails

    assert revisions(public_channel) == before
    assert AuditEvent.objects.count() == events
    assert not PackageFile.objects.filter(yanked_at__isnull=False).exists()


def test_a_change_requests_each_touched_index_once_and_audits_at_its_end(
    public_channel, two_files, users
):
    tool, helper = two_files
    before = revisions(public_channel)

    with file_change(actor=users["owner"]) as change:
        yanking.yank(tool, "broken build", within=change)
        change.touch_file(tool)  # touched twice: still one rebuild request
        deleting.delete_package_file(helper, within=change)
        assert not AuditEvent.objects.filter(
            action__in=["package.yanked", "package.deleted"]
        ).exists()

    assert revisions(public_channel) == {subdir: rev + 1 for subdir, rev in before.items()}
    events = AuditEvent.objects.filter(action__in=["package.yanked", "package.deleted"])
    assert [(e.action, e.actor_name, e.details["filename"]) for e in events.order_by("pk")] == [
        ("package.yanked", "owner", tool.filename),
        ("package.deleted", "owner", helper.filename),
    ]
    # The catalog was refreshed with the change: the deleted file's package is gone.
    assert list(Package.objects.values_list("name", flat=True)) == ["tool"]


def test_a_change_locks_the_channel_before_package_files_never_after(public_channel, two_files):
    refused = pytest.raises(RuntimeError, match="Lock the channel before package files")
    with refused, file_change() as change:
        change.lock_files(PackageFile.objects.all())
        change.lock_channel(public_channel)

    with file_change() as change:
        channel = change.lock_channel(public_channel)
        files = change.lock_files(PackageFile.objects.all())
    assert channel == public_channel and len(files) == 2


def test_a_change_locks_the_files_of_a_distinct_queryset_once_each(public_channel, two_files):
    """As an admin filter on labels makes it: joined and DISTINCT."""
    labels.change(two_files[0], add=["dev"])
    chosen = PackageFile.objects.filter(labels__label__in=["main", "dev"]).distinct()

    with file_change() as change:
        locked = change.lock_files(chosen)

    assert [f.pk for f in locked] == sorted(f.pk for f in two_files)
