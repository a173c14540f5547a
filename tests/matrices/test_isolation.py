"""Isolation: a private channel is invisible, on every route that exposes channel data, to
anonymous visitors, outsiders (signed in or by token) and tokens limited to other channels.

One table per kind of route. A route about one channel must answer for the private
channel exactly as for a channel that does not exist (status, headers that matter, body
with the name swapped); a route that lists or searches must not name the private channel
or its package. tests/matrices/test_access.py holds the read/write matrix of every role on a few
routes; this file covers every route, for the callers who must see nothing. The owner's
run over the same tables shows that each route really exposes the data when allowed.
"""

import base64
import io
import re

import msgpack
import pytest
import zstandard
from django.test import Client

from accounts.models import ApiToken
from channels_app.lifecycle import create_channel
from channels_app.models import Membership, Role
from channels_app.orgs import operations as organizations
from packages_app import runner
from packages_app.discovery import catalog
from packages_app.files import labels
from packages_app.models import PackageFile

from ..packages import catalog_file, eventually, upload, wait_for_index

pytestmark = pytest.mark.django_db(transaction=True)

PRIVATE = "private-team"
MISSING = "no-such-channel"
SECRET_PACKAGE = "secret-tool"
HIDDEN_WORDS = (PRIVATE, SECRET_PACKAGE)
MISSING_PK = 987654321

# Routes about one channel: {channel}, and {file}, {shard} or {pk} of what it holds.
CONDA_ROUTES = {
    "repodata.json": "/{channel}/noarch/repodata.json",
    "repodata.json.zst": "/{channel}/noarch/repodata.json.zst",
    "repodata.json.bz2": "/{channel}/noarch/repodata.json.bz2",
    "shard index": "/{channel}/noarch/repodata_shards.msgpack.zst",
    "shard": "/{channel}/noarch/shards/{shard}.msgpack.zst",
    "package file": "/{channel}/noarch/{file}",
    "channeldata.json": "/{channel}/channeldata.json",
    # The same for a label of the channel (the secret file carries dev too).
    "label repodata.json": "/{channel}/label/dev/noarch/repodata.json",
    "label repodata.json.zst": "/{channel}/label/dev/noarch/repodata.json.zst",
    "label repodata.json.bz2": "/{channel}/label/dev/noarch/repodata.json.bz2",
    "label shard index": "/{channel}/label/dev/noarch/repodata_shards.msgpack.zst",
    "label shard": "/{channel}/label/dev/noarch/shards/{shard}.msgpack.zst",
    "label package file": "/{channel}/label/dev/noarch/{file}",
    "label channeldata.json": "/{channel}/label/dev/channeldata.json",
}
# Uploads by PUT to a package file's URL (packages_app/conda/put.py), of the secret file's
# own bytes: the same conda routes, written to.
UPLOAD_ROUTES = {
    "package upload": "PUT /{channel}/noarch/{file}",
    "label package upload": "PUT /{channel}/label/dev/noarch/{file}",
}
REST_ROUTES = {
    "channel": "/api/v1/channels/{channel}/",
    "packages": "/api/v1/channels/{channel}/packages/",
    "package": "/api/v1/channels/{channel}/packages/secret-tool/",
    "package install": "/api/v1/channels/{channel}/packages/secret-tool/install/",
    "files": "/api/v1/channels/{channel}/files/",
    "members": "/api/v1/channels/{channel}/members/",
    "audit log": "/api/v1/channels/{channel}/audit/",
}
WEB_ROUTES = {
    "channel page": "/{channel}/",
    "package page": "/{channel}/packages/secret-tool/",
    "upload page": "/{channel}/upload/",
    "members page": "/{channel}/members/",
    "settings page": "/{channel}/settings/",
    "audit page": "/{channel}/audit/",
    "statistics page": "/{channel}/statistics/",
}
# Searching within one channel answers 200 with no results, as for a missing channel.
SEARCH_ROUTES = {
    "search page, channel filter": "/search/?q=secret&channel={channel}",
}
ADMIN_ROUTES = {
    "admin channel": "/admin/channels_app/channel/{pk[channel]}/change/",
    "admin package file": "/admin/packages_app/packagefile/{pk[file]}/change/",
    "admin membership": "/admin/channels_app/membership/{pk[membership]}/change/",
}
# Download statistics by REST; the statistics page is among WEB_ROUTES.
STATISTICS_ROUTES = {
    "channel statistics": "/api/v1/channels/{channel}/statistics/",
    "package statistics": "/api/v1/channels/{channel}/packages/secret-tool/statistics/",
}

# Labels by REST.
LABEL_ROUTES = {
    "channel labels": "/api/v1/channels/{channel}/labels/",
    "file labels": "/api/v1/channels/{channel}/files/noarch/{file}/labels/",
}

ROUTES_OF_ONE_CHANNEL = {
    "conda": CONDA_ROUTES,
    "upload": UPLOAD_ROUTES,
    "rest": REST_ROUTES,
    "web": WEB_ROUTES,
    "search": SEARCH_ROUTES,
    "admin": ADMIN_ROUTES,
    "statistics": STATISTICS_ROUTES,
    "labels": LABEL_ROUTES,
}

# Routes over many channels: (path, what a visitor must find there when it answers 200,
# showing the listing works). "secret-sauce" is a public package, "elsewhere" the
# outsider's own channel.
LIST_ROUTES = {
    "REST channel list": ("/api/v1/channels/", "open-tools"),
    "REST search": ("/api/v1/search?q=secret", "secret-sauce"),
    "REST tokens": ("/api/v1/tokens/", None),
    "home": ("/", "secret-sauce"),
    "channel list": ("/channels/", "open-tools"),
    "search page": ("/search/?q=secret", "secret-sauce"),
    "admin channels": ("/admin/channels_app/channel/", "elsewhere"),
    "admin channel search": ("/admin/channels_app/channel/?q=team", None),
    "admin package files": ("/admin/packages_app/packagefile/", "other-tool"),
    "admin memberships": ("/admin/channels_app/membership/", "elsewhere"),
    "admin audit log": ("/admin/accounts/auditevent/", None),
    # Both channels belong to the organisation acme; its team "core" has roles on both.
    "REST my organisations": ("/api/v1/orgs/", None),
    "REST organisation channels": ("/api/v1/orgs/acme/channels/", "open-tools"),
    "REST organisation teams": ("/api/v1/orgs/acme/teams/", "core"),
    "REST team": ("/api/v1/orgs/acme/teams/core/", "open-tools"),
    "REST organisation members": ("/api/v1/orgs/acme/members/", "owner"),
    "admin organisations": ("/admin/accounts/organization/", None),
    "admin teams": ("/admin/accounts/team/", None),
    "organisation page": ("/orgs/acme/", "open-tools"),
    "organisation team page": ("/orgs/acme/teams/core/", None),
}

# What each caller gets from a hidden channel's routes, as for a missing one: anonymous
# callers are asked for credentials, signed-in ones told it does not exist; tokens do not
# open web pages or the admin (they are read as anonymous there). A member of the
# channel's organisation who is in none of its teams is an outsider to the channel.
HIDDEN = {
    "anonymous": {"conda": 401, "rest": 401, "web": 404, "search": 200, "admin": 302},
    "outsider session": {"conda": 404, "rest": 404, "web": 404, "search": 200, "admin": 302},
    "outsider token": {"conda": 404, "rest": 404, "web": 404, "search": 200, "admin": 302},
    "limited token": {"conda": 404, "rest": 404, "web": 404, "search": 200, "admin": 302},
    "org member token": {"conda": 404, "rest": 404, "web": 404, "search": 200, "admin": 302},
}
# Statistics and labels by REST answer as the other REST routes; an upload by PUT as a
# conda route, but a PUT never reads the browser session (it carries no CSRF token).
for expected in HIDDEN.values():
    expected["statistics"] = expected["labels"] = expected["rest"]
    expected["upload"] = expected["conda"]
HIDDEN["outsider session"]["upload"] = 401
# The list routes' status for each caller (only the outsider owns a channel, elsewhere,
# so only they may use the admin; its audit log is for superusers).
ADMIN_LIST = {"anonymous": 302, "outsider session": 200, "outsider token": 302,
              "limited token": 302, "org member token": 302}  # fmt: skip
# Members and teams of an organisation are for its members.
ORG_MEMBERS_ONLY = {"anonymous": 401, "outsider session": 403, "outsider token": 403,
                    "limited token": 403}  # fmt: skip
LISTED = {
    "REST tokens": {"anonymous": 401},
    "REST my organisations": {"anonymous": 401},
    "REST organisation teams": ORG_MEMBERS_ONLY,
    "REST team": ORG_MEMBERS_ONLY,
    "REST organisation members": ORG_MEMBERS_ONLY,
    # The outsider may use the admin (for their channel) but owns no organisation.
    "admin organisations": {**ADMIN_LIST, "outsider session": 403},
    "admin teams": {**ADMIN_LIST, "outsider session": 403},
    "admin channels": ADMIN_LIST,
    "admin channel search": ADMIN_LIST,
    "admin package files": ADMIN_LIST,
    "admin memberships": ADMIN_LIST,
    "admin audit log": {**ADMIN_LIST, "outsider session": 403},
    # Teams are for members: others are sent to sign in (tokens do not open pages) or told.
    "organisation team page": {
        "anonymous": 302,
        "outsider session": 403,
        "outsider token": 302,
        "limited token": 302,
        "org member token": 302,
    },  # fmt: skip
}

TOKEN_FORMS = ["bearer", "basic", "x-api-key", "url"]


def body_of(response):
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def normalized(response, swap=None):
    """The body as text, CSRF tokens (masked anew in every answer) removed, and the name
    ``swap`` = (old, new) replaced."""
    text = body_of(response).decode(errors="replace")
    text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", text)
    if swap:
        text = text.replace(*swap)
    return text


class Visitor:
    """One caller: a browser session, a token, both or neither."""

    def __init__(self, user=None, secret=None):
        self.client = Client()
        if user is not None:
            self.client.force_login(user)
        self.secret = secret
        self.package = b""  # the body of a PUT

    def send(self, path, form="bearer"):
        """GET ``path``; PUT :attr:`package` to a path written ``PUT /...``."""
        method, _, put_path = path.partition("PUT ")
        headers = {}
        if method == "" and put_path:
            path = put_path
        if self.secret and form == "url":
            path = f"/t/{self.secret}{path}"
        elif self.secret and form == "bearer":
            headers["Authorization"] = f"Bearer {self.secret}"
        elif self.secret and form == "basic":
            encoded = base64.b64encode(f"anyone:{self.secret}".encode()).decode()
            headers["Authorization"] = f"Basic {encoded}"
        elif self.secret and form == "x-api-key":
            headers["X-API-Key"] = self.secret
        if put_path:
            return self.client.put(path, self.package, "application/octet-stream", headers=headers)
        return self.client.get(path, headers=headers)


@pytest.fixture
def world(users, tokens, client_for, private_channel, public_channel, packages, django_user_model):
    """The private channel with a real, indexed package; a public package; the outsider's
    own channel, of which the member is a member too; the member's token limited to it."""
    path = packages.make(SECRET_PACKAGE, "1.0")
    assert upload(client_for("owner"), PRIVATE, path).status_code == 201
    labels.change(PackageFile.objects.get(channel=private_channel), add=["dev"])
    wait_for_index(private_channel, "noarch")
    wait_for_index(private_channel, "noarch", label="dev")
    runner.wait_for_background_work()
    catalog_file(public_channel, "noarch", "secret-sauce", "2.0", summary="Public")
    catalog.refresh(public_channel, ["secret-sauce"])
    elsewhere = create_channel(users["outsider"], "elsewhere", private=True)
    Membership.objects.create(channel=elsewhere, user=users["member"], role=Role.MEMBER)
    catalog_file(elsewhere, "noarch", "other-tool", "1.0")
    _, limited = ApiToken.create_for(users["member"], "limited", channels=[elsewhere])
    # Both channels move to the organisation acme, whose team "core" (the owner) has
    # roles on them; org-member is in acme, in no team.
    acme = organizations.create_organization(users["owner"], "acme")
    org_member = django_user_model.objects.create_user("org-member", "om@example.org", "pw")
    organizations.accept(organizations.invite(acme, "org-member", "member", users["owner"]),
                         org_member)  # fmt: skip
    core = organizations.create_team(acme, "core", users["owner"])
    organizations.add_team_member(core, users["owner"], users["owner"])
    for channel in (private_channel, public_channel):
        organizations.transfer_channel(channel, acme, users["owner"])
        organizations.set_team_channel_role(core, channel, Role.MEMBER, users["owner"])
    _, org_member_secret = ApiToken.create_for(org_member, "org member")

    owner = Visitor(users["owner"], tokens["owner"])
    shard_index = owner.send(CONDA_ROUTES["shard index"].format(channel=PRIVATE))
    assert shard_index.status_code == 200
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body_of(shard_index))).read()
    shard = msgpack.unpackb(raw)["shards"][SECRET_PACKAGE].hex()
    package_file = PackageFile.objects.get(channel=private_channel)
    membership = Membership.objects.get(channel=private_channel, user=users["member"])
    visitors = {
        "anonymous": Visitor(),
        "outsider session": Visitor(users["outsider"]),
        "outsider token": Visitor(secret=tokens["outsider"]),
        "limited token": Visitor(secret=limited),
        "org member token": Visitor(secret=org_member_secret),
        "owner": owner,
    }
    for visitor in visitors.values():
        visitor.package = path.read_bytes()
    return {
        "values": {
            "file": path.name,
            "shard": shard,
            "pk": {
                "channel": private_channel.pk,
                "file": package_file.pk,
                "membership": membership.pk,
            },
        },  # fmt: skip
        "visitors": visitors,
    }


def route_cases():
    """(kind, route name, path, credential form) for every route of one channel; conda
    routes (uploads included) once per form of token."""
    for kind, routes in ROUTES_OF_ONE_CHANNEL.items():
        for name, path in routes.items():
            forms = TOKEN_FORMS if kind in ("conda", "upload") else ["bearer"]
            for form in forms:
                yield kind, name, path, form


def object_path(location):
    """A redirect's target with object ids left out."""
    return re.sub(r"/\d+/", "/N/", location or "")


def hidden_and_missing(visitor, kind, path, form, values):
    """The answers for the private channel and for one that does not exist."""
    missing_pk = {key: MISSING_PK for key in values["pk"]}
    hidden = visitor.send(path.format(channel=PRIVATE, **values), form)
    missing = visitor.send(path.format(channel=MISSING, **{**values, "pk": missing_pk}), form)
    return hidden, missing


@pytest.mark.parametrize("who", list(HIDDEN))
def test_a_private_channel_answers_as_a_missing_one_on_every_route(world, who):
    visitor = world["visitors"][who]
    values = world["values"]
    problems = []

    for kind, name, path, form in route_cases():
        hidden, missing = hidden_and_missing(visitor, kind, path, form, values)
        where = f"{name} ({form})" if kind in ("conda", "upload") else name
        if hidden.status_code != HIDDEN[who][kind]:
            problems.append(f"{where}: {hidden.status_code}, expected {HIDDEN[who][kind]}")
        if hidden.status_code != missing.status_code:
            problems.append(f"{where}: {hidden.status_code}, a missing channel gets "
                            f"{missing.status_code}")  # fmt: skip
        for header in ("WWW-Authenticate", "Content-Type"):
            if hidden.get(header) != missing.get(header):
                problems.append(f"{where}: {header} differs from a missing channel's")
        if kind == "admin":
            if object_path(hidden.get("Location")) != object_path(missing.get("Location")):
                problems.append(f"{where}: redirected elsewhere than for a missing object")
        elif normalized(hidden) != normalized(missing, (MISSING, PRIVATE)):
            problems.append(f"{where}: the body differs from a missing channel's")

    assert problems == []


@pytest.mark.parametrize("who", list(HIDDEN))
def test_lists_and_searches_never_name_a_private_channel_or_its_package(world, who):
    visitor = world["visitors"][who]
    problems = []

    for name, (path, shown) in LIST_ROUTES.items():
        response = visitor.send(path)
        expected = LISTED.get(name, {}).get(who, 200)
        text = normalized(response)
        if response.status_code != expected:
            problems.append(f"{name}: {response.status_code}, expected {expected}")
        if expected == 200 and shown and shown not in text:
            problems.append(f"{name}: does not show {shown!r}; is the listing working?")
        for word in HIDDEN_WORDS:
            if word in text:
                problems.append(f"{name}: names {word!r}")

    assert problems == []


def test_the_owner_reaches_everything_the_matrix_hides(world):
    """The control: every route above does expose the private channel to its owner (by
    token for conda files and REST, by session for pages and the admin)."""
    owner = world["visitors"]["owner"]
    values = world["values"]
    problems = []

    def check(where, path, form="bearer"):
        response = owner.send(path, form)
        if response.status_code != OWNER_REACHES.get(where.partition(" (")[0], 200):
            problems.append(f"{where}: {response.status_code}")

    for _kind, name, path, form in route_cases():
        hidden_path = path.format(channel=PRIVATE, **values)
        if name.endswith("repodata.json.bz2"):  # compressed in the background
            eventually(lambda path=hidden_path, form=form: assert_ok(owner.send(path, form)))
        check(f"{name} ({form})", hidden_path, form)
    for name, (path, _) in LIST_ROUTES.items():
        response = owner.send(path)
        if name == "admin audit log":
            continue  # superusers only
        if response.status_code != 200:
            problems.append(f"{name}: {response.status_code}")
        elif name not in QUIET_LISTS and not any(w in normalized(response) for w in HIDDEN_WORDS):
            problems.append(f"{name}: does not name the private channel or package")

    assert problems == []


# What the owner gets where it is not 200: the secret file carries main and dev, and the
# same bytes again under one label alone are a conflict naming the file (reached it).
OWNER_REACHES = {"label package upload": 409}

# Lists that name no channel, even to the owner.
QUIET_LISTS = {
    "REST tokens",
    "REST my organisations",
    "REST organisation teams",
    "REST organisation members",
    "admin organisations",
    "admin teams",
}


def assert_ok(response):
    assert response.status_code == 200
