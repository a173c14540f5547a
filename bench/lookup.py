"""The conda file lookup, and whole conda file requests, timed in-process on PostgreSQL.

    python -m bench.lookup [--against REV] [--rounds 5] [--iterations 2000]

A private channel of an organisation (read by a member with a token, whose role comes
from a direct membership, a team and the organisation) and a public channel (read
anonymously), each with one package and its index, among 200 other channels with their
members and teams. Timed: :func:`lookup` alone, and GET requests through the Django test
client (the fast-path middleware, the view, the streamed answer read to its end), for an
index file and a package file. With ``--against``, the lookup of commit REV
(``packages_app/conda/lookup.py`` there) runs in the same process on the same connection,
alternating round by round with the current one; requests then use either lookup.
Its own database: WHARF_BENCH_DATABASE_URL (default wharf_bench_lookup); nothing is
appended to docs/benchmarks.md.
"""

import argparse
import importlib.util
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from . import common

PRIVATE, PUBLIC = "bench-vault", "bench-open"


def _populate(folder):
    from django.db import connection

    from accounts.models import (
        ApiToken,
        Organization,
        OrganizationMember,
        OrgRole,
        Team,
        TeamMember,
        User,
    )
    from channels_app.lifecycle import create_channel
    from channels_app.models import Channel, Membership, Role, TeamChannel
    from packages_app.index import rebuilds
    from packages_app.intake import importing

    users = User.objects.bulk_create([User(username=f"user{i}") for i in range(400)])
    owner = User.objects.create_user("owner", "owner@example.org", "bench-password-1")
    member = User.objects.create_user("member", "member@example.org", "bench-password-1")
    org = Organization.objects.create(name="bench-org")
    OrganizationMember.objects.create(organization=org, user=owner, role=OrgRole.OWNER)
    OrganizationMember.objects.create(organization=org, user=member, role=OrgRole.ADMIN)
    team = Team.objects.create(organization=org, name="readers")
    TeamMember.objects.create(team=team, user=member)
    others = Channel.objects.bulk_create(
        [Channel(name=f"other{i}", private=i % 2 == 0, organization=org) for i in range(200)]
    )
    Membership.objects.bulk_create(
        [Membership(channel=c, user=users[(i * 7 + k) % 400]) for i, c in enumerate(others)
         for k in range(3)]
    )  # fmt: skip
    TeamChannel.objects.bulk_create([TeamChannel(team=team, channel=c) for c in others[::3]])
    private = create_channel(owner, PRIVATE, private=True)
    private.organization = org
    private.save()
    Membership.objects.create(channel=private, user=member, role=Role.MEMBER)
    TeamChannel.objects.create(team=team, channel=private, role=Role.MAINTAINER)
    public = create_channel(owner, PUBLIC)
    files = {}
    for channel in (private, public):
        path = common.extra_package(folder / channel.name, "bench-pkg", "linux-64")
        importing.import_files(channel, [path], uploader=owner)
        rebuilds.rebuild_until_current(channel.pk, "linux-64")
        files[channel.name] = path.name
    _, secret = ApiToken.create_for(member, "bench")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return member, secret, files


def _lookup_of(rev):
    """The lookup module of commit ``rev``, loaded beside the current one."""
    source = subprocess.run(
        ["git", "show", f"{rev}:packages_app/conda/lookup.py"],
        cwd=common.ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "lookup_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("lookup_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cases(member, secret, files):
    from django.contrib.auth.models import AnonymousUser

    from accounts.authentication import Caller

    signed_in, anonymous = Caller(member), Caller(AnonymousUser())
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    return [
        ("signed in, index", signed_in, PRIVATE, "index", "repodata.json", bearer),
        ("signed in, package", signed_in, PRIVATE, "package", files[PRIVATE], bearer),
        ("anonymous, index", anonymous, PUBLIC, "index", "repodata.json", {}),
        ("anonymous, package", anonymous, PUBLIC, "package", files[PUBLIC], {}),
    ]


def _time(function, iterations):
    started = time.perf_counter()
    for _ in range(iterations):
        function()
    return (time.perf_counter() - started) / iterations * 1e6


def main(args):
    os.environ.setdefault(
        "WHARF_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/wharf_bench_lookup"
    )
    common.setup_django(REDIS_URL="", ALLOWED_HOSTS="testserver")
    from django.db import connection
    from django.test import Client

    from packages_app.conda import lookup, views

    common.reset_database()
    with tempfile.TemporaryDirectory() as folder:
        member, secret, files = _populate(Path(folder))
    variants = {"current": lookup}
    if args.against:
        variants = {args.against: _lookup_of(args.against), **variants}
    client = Client()
    results = {}  # (variant, what, case) -> [µs per call, one per round]
    for round_number in range(args.rounds):
        for name, caller, channel, kind, filename, headers in _cases(member, secret, files):
            url = f"/{channel}/linux-64/{filename}"
            for what in ("lookup", "request"):
                # The variants take turns right after each other, so that what else runs
                # on the machine weighs on both alike.
                for variant, module in variants.items():
                    views.lookup = module.lookup  # the requests go through this lookup

                    def look(module=module, caller=caller, where=(channel, kind, filename)):
                        channel, kind, filename = where
                        found = module.lookup(caller, channel, kind, "linux-64", filename)
                        assert found[1][0] is not None

                    def get(url=url, headers=headers):
                        response = client.get(url, **headers)
                        assert response.status_code == 200, response
                        b"".join(response.streaming_content)
                        response.close()

                    function = look if what == "lookup" else get
                    function()  # prepares the statement on this connection
                    spent = _time(function, args.iterations)
                    results.setdefault((variant, what, name), []).append(spent)
        print(f"round {round_number + 1} of {args.rounds} done", flush=True)
    views.lookup = lookup.lookup
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans, statement FROM pg_prepared_statements "
            "WHERE statement LIKE %s",
            ["%packages_app%"],
        )
        print("lookups prepared on this connection (generic plans, custom plans, columns):")
        for generic, custom, statement in cursor.fetchall():
            print(f"  {generic:7} {custom:3}  {statement[:90]}...")
    print("\n| variant | what | case | µs per call, each round | median | best |")
    print("|---|---|---|---|---|---|")
    for what in ("lookup", "request"):
        for name, *_ in _cases(member, secret, files):
            for variant in variants:
                spent = results[variant, what, name]
                rounds = ", ".join(f"{s:.0f}" for s in spent)
                middle, best = statistics.median(spent), min(spent)
                print(f"| {variant} | {what} | {name} | {rounds} | {middle:.0f} | {best:.0f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", help="a commit whose lookup is timed alongside")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=2000)
    main(parser.parse_args())
