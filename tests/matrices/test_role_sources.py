"""The role sources are read alike everywhere: the conda file lookup (its one compiled
query), ``Channel.role_of``, ``has_role``, ``roles_of`` and ``readable_channels`` give
every person the same role on every channel, and that role is the policy's.

People: the channel quartet of conftest (owner, maintainer, member, outsider), anonymous,
a superuser, and the people of organisation acme: boss (its owner), admin (its admin),
dev (in two teams, and a direct member), reader (in one team) and plain (a member of the
organisation only). Channels: a public and a private one of a user, and of acme.
"""

from datetime import UTC, datetime

import orjson
import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.authentication import Caller
from accounts.models import Organization, OrganizationMember, OrgRole, Team, TeamMember
from channels_app.access import has_role, readable_channels, roles_of
from channels_app.models import Channel, Membership, Role, TeamChannel
from packages_app.conda.lookup import lookup
from packages_app.models import PackageFile

from ..packages import eventually, publish

pytestmark = pytest.mark.django_db

OWNER, MAINTAINER, MEMBER = Role.OWNER, Role.MAINTAINER, Role.MEMBER
CHANNELS = ("open-tools", "private-team", "acme-open", "acme-vault")
PUBLIC = {"open-tools", "acme-open"}
# The policy: each person's role on each channel (absent: none).
EXPECTED = {
    "anonymous": {},
    "owner": {"open-tools": OWNER, "private-team": OWNER},
    "maintainer": {"open-tools": MAINTAINER, "private-team": MAINTAINER},
    "member": {"open-tools": MEMBER, "private-team": MEMBER},
    "outsider": {},
    "root": dict.fromkeys(CHANNELS, OWNER),  # a superuser, by no source
    "boss": {"acme-open": OWNER, "acme-vault": OWNER},  # owner of acme
    "admin": {"acme-open": OWNER, "acme-vault": OWNER},  # admin of acme (and direct member)
    # direct owner of acme-open; on acme-vault the best of a direct membership (member)
    # and two teams (maintainer, member)
    "dev": {"acme-open": OWNER, "acme-vault": MAINTAINER},
    "reader": {"acme-vault": MEMBER},  # by a team only
    "plain": {},  # a member of acme, which alone gives nothing
}
# Every shape of lookup: (kind, subdir, file name, label).
SHAPES = [
    (None, "noarch", "", None),
    (None, "noarch", "", "main"),
    ("index", "noarch", "repodata.json", None),
    ("index", "noarch", "repodata.json", "dev"),
    ("package", "noarch", "demo-1.0-0.conda", None),
    ("package", "noarch", "demo-1.0-0.conda", "dev"),
]


@pytest.fixture
def people(users, django_user_model):
    made = {
        name: django_user_model.objects.create_user(name, f"{name}@example.org", "pw-" + name)
        for name in ("boss", "admin", "dev", "reader", "plain")
    }
    made["root"] = django_user_model.objects.create_superuser("root", "root@example.org", "pw")
    return {**users, **made, "anonymous": AnonymousUser()}


@pytest.fixture
def channels(people, public_channel, private_channel):
    """The four channels, with acme's people, teams and roles as the module says."""
    acme = Organization.objects.create(name="acme", created_by=people["boss"])
    for name, role in (("boss", OrgRole.OWNER), ("admin", OrgRole.ADMIN)):
        OrganizationMember.objects.create(organization=acme, user=people[name], role=role)
    for name in ("dev", "reader", "plain"):
        OrganizationMember.objects.create(organization=acme, user=people[name])
    acme_open = Channel.objects.create(name="acme-open", organization=acme)
    vault = Channel.objects.create(name="acme-vault", organization=acme, private=True)
    devs = Team.objects.create(organization=acme, name="devs")
    readers = Team.objects.create(organization=acme, name="readers")
    for team, names in ((devs, ["dev"]), (readers, ["dev", "reader"])):
        for name in names:
            TeamMember.objects.create(team=team, user=people[name])
    TeamChannel.objects.create(team=devs, channel=vault, role=MAINTAINER)
    TeamChannel.objects.create(team=devs, channel=acme_open, role=MEMBER)
    TeamChannel.objects.create(team=readers, channel=vault, role=MEMBER)
    Membership.objects.create(channel=vault, user=people["dev"], role=MEMBER)
    Membership.objects.create(channel=acme_open, user=people["dev"], role=OWNER)
    Membership.objects.create(channel=vault, user=people["admin"], role=MEMBER)
    return {channel.name: channel for channel in Channel.objects.all()}


@pytest.mark.parametrize("who", list(EXPECTED))
def test_the_lookup_reads_the_role_the_policy_gives(people, channels, who):
    user = people[who]
    for name in CHANNELS:
        expected = EXPECTED[who].get(name)
        assert Channel.objects.get(name=name).role_of(user) == expected, name
        for kind, subdir, filename, label in SHAPES:
            found, _, _ = lookup(Caller(user), name, kind, subdir, filename, label)
            # The role came with the lookup: reading it asks the database nothing more.
            with CaptureQueriesContext(connection) as queries:
                assert found.role_of(user) == expected, (name, kind, label)
            assert not queries.captured_queries


@pytest.mark.parametrize("who", [who for who in EXPECTED if who != "anonymous"])
def test_the_channel_filters_agree_with_the_role(people, channels, who):
    user = people[who]
    # A superuser's rights everywhere are no source: the filters count sources only.
    by_source = {} if user.is_superuser else EXPECTED[who]
    ids = {name: channel.pk for name, channel in channels.items()}

    assert roles_of(user, Channel.objects.all()) == {ids[n]: r for n, r in by_source.items()}
    for roles in ([OWNER], [OWNER, MAINTAINER], list(Role)):
        granted = Channel.objects.filter(has_role(user, roles)).values_list("name", flat=True)
        assert set(granted) == {n for n, r in by_source.items() if r in roles}, roles
    readable = {channel.name for channel in readable_channels(Caller(user))}
    if user.is_superuser:
        assert readable == set(CHANNELS)
    else:
        assert readable == PUBLIC | set(EXPECTED[who])


def test_anonymous_callers_read_public_channels_only(channels):
    assert {channel.name for channel in readable_channels(Caller(AnonymousUser()))} == PUBLIC


def test_the_lookup_reads_no_role_source_for_anonymous_callers(people, channels):
    sources = [Membership, TeamChannel, OrganizationMember]
    tables = [model._meta.db_table for model in sources]
    for who in ("anonymous", "reader"):
        with CaptureQueriesContext(connection) as queries:
            lookup(Caller(people[who]), "acme-vault", "index", "noarch", "repodata.json", "dev")
        (query,) = queries.captured_queries
        read = [table for table in tables if table in query["sql"]]
        assert read == ([] if who == "anonymous" else tables), who


def _utc(value):
    """A datetime as a raw query reads it (SQLite: naive UTC text), in UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@pytest.mark.django_db(transaction=True)  # indexing starts when the upload commits
def test_the_lookup_reads_the_file_rows_with_the_role(
    people, channels, client_for, packages, private_channel
):
    path = packages.make("demo", "1.0")
    publish(client_for, private_channel, path)
    stored = PackageFile.objects.get(channel=private_channel, filename=path.name)
    member = Caller(people["member"])

    found, row, used = lookup(member, "private-team", "package", "noarch", path.name)
    assert (found.pk, found.private, found.role_of(people["member"]), used) == (
        private_channel.pk, True, MEMBER, True,
    )  # fmt: skip
    storage_path, sha256, size, uploaded_at = row
    assert (storage_path, sha256, size) == (stored.storage_path, stored.sha256, stored.size)
    assert _utc(uploaded_at) == stored.uploaded_at

    def reads_the_index_row():
        # Retried: a worker may still publish the .bz2, which changes the row.
        index = private_channel.subdir_indexes.get(label="main", subdir="noarch")
        for label in (None, "main"):
            _, (published_files, published_at), used = lookup(
                member, "private-team", "index", "noarch", "repodata.json", label
            )
            if isinstance(published_files, str | bytes):
                published_files = orjson.loads(published_files)
            assert (published_files, _utc(published_at), used) == (
                index.published_files, index.published_at, True,
            )  # fmt: skip

    eventually(reads_the_index_row)

    _, row, used = lookup(member, "private-team", "index", "noarch", "repodata.json", "dev")
    assert (tuple(row), used) == ((None, None), False)  # no label dev: nothing published
    _, row, _ = lookup(member, "private-team", "package", "noarch", "other-1.0-0.conda")
    assert tuple(row) == (None, None, None, None)
    assert lookup(member, "no-such-channel", "package", "noarch", path.name) == (None, None, True)
