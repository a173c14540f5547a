"""The conda file fast path: token cache and its bounds, one query, X-Accel-Redirect."""

from datetime import timedelta
from email.utils import parsedate_to_datetime

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.urls import Resolver404, resolve
from django.utils import timezone
from prometheus_client import REGISTRY

from accounts import authentication
from accounts.models import ApiToken
from channels_app.models import Membership
from packages_app.conda import routes
from packages_app.conda.views import channel_file

from ..admin import form_data
from ..packages import upload, wait_for_index

pytestmark = pytest.mark.django_db(transaction=True)

PRIVATE_REPODATA = "/private-team/noarch/repodata.json"
ADMIN_USERS = "/admin/accounts/user/"
ADMIN_TOKENS = "/admin/accounts/apitoken/"


@pytest.fixture(autouse=True)
def empty_token_cache():
    authentication.token_cache.clear()
    yield
    authentication.token_cache.clear()


@pytest.fixture
def clock(monkeypatch):
    """The token cache's clock, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(authentication.token_cache, "clock", lambda: now[0])

    def advance(seconds):
        now[0] += seconds

    return advance


def body(response):
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.fixture
def stored(client_for, private_channel, packages):
    """A private channel with one package, indexed."""
    path = packages.make("secret", "1.0")
    assert upload(client_for("owner"), private_channel.name, path).status_code == 201
    index = wait_for_index(private_channel, "noarch")
    return path, index


# The token cache ---------------------------------------------------------------------


def test_it_reads_the_token_once_within_the_cache_time(
    client_for, private_channel, django_assert_num_queries, clock
):
    member = client_for("member")
    assert member.get(PRIVATE_REPODATA).status_code == 200

    # One query: channel, role and published index together; the token came from the cache.
    with django_assert_num_queries(1):
        assert member.get(PRIVATE_REPODATA).status_code == 200
    clock(6)
    with django_assert_num_queries(2):
        assert member.get(PRIVATE_REPODATA).status_code == 200


def test_it_refuses_a_token_revoked_in_this_process_at_once(
    client_for, tokens, users, private_channel
):
    member = client_for("member")
    assert member.get(PRIVATE_REPODATA).status_code == 200

    ApiToken.objects.get(user=users["member"]).revoke()

    response = member.get(PRIVATE_REPODATA)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_it_refuses_a_token_revoked_elsewhere_within_the_cache_time(
    client_for, users, private_channel, clock, settings
):
    settings.WHARF_TOKEN_CACHE_SECONDS = 5
    member = client_for("member")
    assert member.get(PRIVATE_REPODATA).status_code == 200

    # Another process revokes it: a plain UPDATE, no signal reaches this process.
    ApiToken.objects.filter(user=users["member"]).update(revoked_at=timezone.now())

    clock(4.9)
    assert member.get(PRIVATE_REPODATA).status_code == 200  # within the documented bound
    assert member.get("/api/v1/channels/private-team/").status_code == 401  # REST: never cached
    clock(0.2)
    response = member.get(PRIVATE_REPODATA)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_it_does_not_cache_tokens_when_the_cache_time_is_zero(
    client_for, users, private_channel, settings
):
    settings.WHARF_TOKEN_CACHE_SECONDS = 0
    member = client_for("member")
    assert member.get(PRIVATE_REPODATA).status_code == 200

    ApiToken.objects.filter(user=users["member"]).update(revoked_at=timezone.now())

    assert member.get(PRIVATE_REPODATA).status_code == 401


def test_it_checks_the_expiry_of_a_cached_token_on_every_request(
    client_for, users, private_channel, monkeypatch
):
    token, secret = ApiToken.create_for(users["member"], "short", expires_in_days=1)
    client = client_for(secret=secret)
    assert client.get(PRIVATE_REPODATA).status_code == 200

    later = timezone.now() + timedelta(days=1, seconds=1)
    monkeypatch.setattr("accounts.models.timezone.now", lambda: later)

    response = client.get(PRIVATE_REPODATA)
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


@pytest.fixture
def admin(django_user_model):
    """A superuser's browser session, for the admin pages."""
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.org"))
    return client


def changed_in_the_admin(admin, url, **changes):
    data = form_data(admin.get(url))
    response = admin.post(url, {**data, **changes})
    assert response.status_code == 302, response.context["errors"]


@pytest.mark.parametrize("how", ["api", "keys page", "admin action"])
def test_it_refuses_a_token_revoked_through_wharf_at_once(
    how, client_for, users, private_channel, admin
):
    token, secret = ApiToken.create_for(users["member"], "doomed")
    client = client_for(secret=secret)
    assert client.get(PRIVATE_REPODATA).status_code == 200  # cached from here on

    if how == "api":
        assert client.delete(f"/api/v1/tokens/{token.pk}/").status_code == 204
    elif how == "keys page":
        page = Client()
        page.force_login(users["member"])
        assert page.post(f"/settings/keys/{token.pk}/revoke/").status_code == 302
    else:
        selected = {"action": "revoke", "_selected_action": [token.pk]}
        assert admin.post(ADMIN_TOKENS, selected).status_code == 302

    response = client.get(PRIVATE_REPODATA)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_it_refuses_a_disabled_account_at_once(client_for, users, private_channel, admin):
    member = client_for("member")
    assert member.get(PRIVATE_REPODATA).status_code == 200

    changed_in_the_admin(admin, f"{ADMIN_USERS}{users['member'].pk}/change/", is_active=False)

    assert member.get(PRIVATE_REPODATA).status_code == 401


@pytest.mark.parametrize("how", ["its page", "delete selected"])
def test_it_refuses_the_tokens_of_an_account_deleted_in_the_admin_at_once(
    how, client_for, users, private_channel, admin
):
    member = client_for("member")
    assert member.get(PRIVATE_REPODATA).status_code == 200

    deleted = delete_in_the_admin(admin, ADMIN_USERS, users["member"].pk, how)

    assert deleted == 302
    assert member.get(PRIVATE_REPODATA).status_code == 401


def test_it_applies_a_new_channel_limit_at_once(
    client_for, users, public_channel, private_channel, admin
):
    token, secret = ApiToken.create_for(users["member"], "narrow")
    client = client_for(secret=secret)
    assert client.get(PRIVATE_REPODATA).status_code == 200

    url = f"{ADMIN_TOKENS}{token.pk}/change/"
    changed_in_the_admin(admin, url, limited=True, channels=[public_channel.pk])

    assert client.get(PRIVATE_REPODATA).status_code == 404


@pytest.mark.parametrize("how", ["its page", "delete selected"])
def test_it_refuses_a_token_deleted_in_the_admin_at_once(
    how, client_for, users, private_channel, admin
):
    token, secret = ApiToken.create_for(users["member"], "doomed")
    client = client_for(secret=secret)
    assert client.get(PRIVATE_REPODATA).status_code == 200

    assert delete_in_the_admin(admin, ADMIN_TOKENS, token.pk, how) == 302

    assert client.get(PRIVATE_REPODATA).status_code == 401


def delete_in_the_admin(admin, changelist, pk, how):
    if how == "its page":
        return admin.post(f"{changelist}{pk}/delete/", {"post": "yes"}).status_code
    chosen = {"action": "delete_selected", "_selected_action": [pk], "post": "yes"}
    return admin.post(changelist, chosen).status_code


def test_it_reads_memberships_on_every_request(client_for, users, private_channel):
    member = client_for("member")
    assert member.get(PRIVATE_REPODATA).status_code == 200

    Membership.objects.filter(user=users["member"], channel=private_channel).delete()

    assert member.get(PRIVATE_REPODATA).status_code == 404


def test_it_never_caches_an_unknown_token(client_for, private_channel):
    client = client_for(secret="wharf-NotARealTokenAtAll0123456789")
    for _ in range(2):
        assert client.get(PRIVATE_REPODATA).status_code == 401
    assert not authentication.token_cache._entries


# One query: the same answers -----------------------------------------------------------


def test_it_serves_package_files_with_their_validators(client_for, stored):
    path, index = stored
    member = client_for("member")
    url = f"/private-team/noarch/{path.name}"

    response = member.get(url)

    assert response.status_code == 200
    assert body(response) == path.read_bytes()
    assert response["Cache-Control"] == "private, max-age=600"
    assert response["Content-Disposition"] == f'attachment; filename="{path.name}"'
    assert member.get(url, HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304
    assert client_for("outsider").get(url).status_code == 404
    assert client_for().get(url).status_code == 401


def test_it_dates_the_index_from_its_publication(client_for, stored):
    _, index = stored

    response = client_for("member").get("/private-team/noarch/repodata.json.zst")

    assert parsedate_to_datetime(response["Last-Modified"]) == index.published_at.replace(
        microsecond=0
    )


def prepared_statements():
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [statement for (statement,) in cursor.fetchall()]


def test_it_looks_the_file_up_with_a_prepared_statement_on_postgresql(client_for, stored):
    """Planning the role subqueries cost more than running them: PostgreSQL plans the
    lookup once per connection. SQLite prepares every statement itself."""
    path, _ = stored
    member = client_for("member")

    for url in (PRIVATE_REPODATA, f"/private-team/noarch/{path.name}"):
        assert member.get(url).status_code == 200

    if connection.vendor == "postgresql":
        lookups = [s for s in prepared_statements() if "channels_app_teamchannel" in s]
        assert len(lookups) == 2, prepared_statements()  # one per kind of file
    else:
        assert not settings.DATABASES["default"].get("OPTIONS", {}).get("prepare_threshold")


def test_it_prepares_nothing_when_told_not_to(client_for, stored, settings):
    settings.WHARF_DB_PREPARED_STATEMENTS = False
    if connection.vendor == "postgresql":
        connection.close()  # a fresh connection: none prepared before

    assert client_for("member").get(PRIVATE_REPODATA).status_code == 200

    if connection.vendor == "postgresql":
        assert prepared_statements() == []


def test_it_lets_a_superuser_read_every_channel(client_for, users, private_channel):
    users["outsider"].is_superuser = True
    users["outsider"].save()

    assert client_for("outsider").get(PRIVATE_REPODATA).status_code == 200


# X-Accel-Redirect ----------------------------------------------------------------------


@pytest.fixture
def accel(settings):
    settings.WHARF_ACCEL_REDIRECT_PREFIX = "/_protected/"


def test_it_hands_index_files_to_nginx(client_for, stored, accel):
    _, index = stored
    published = index.published_files["repodata.json.zst"]

    response = client_for("member").get("/private-team/noarch/repodata.json.zst")

    assert response.status_code == 200
    assert response["X-Accel-Redirect"] == "/_protected/" + published["path"]
    assert response["ETag"] == f'"{published["etag"]}"'
    assert response["Content-Type"] == "application/zstd"
    assert response["Cache-Control"] == "private, no-cache"
    assert response["Last-Modified"]
    assert body(response) == b""


def test_it_hands_package_files_and_their_ranges_to_nginx(client_for, stored, accel):
    path, _ = stored
    member = client_for("member")
    url = f"/private-team/noarch/{path.name}"

    whole = member.get(url)
    part = member.get(url, HTTP_RANGE="bytes=10-19")
    beyond = member.get(url, HTTP_RANGE=f"bytes={path.stat().st_size + 10}-")

    for response in (whole, part):
        assert response.status_code == 200  # nginx answers 206 for the range itself
        assert response["X-Accel-Redirect"].startswith("/_protected/packages/")
        assert response["X-Accel-Redirect"].endswith("/" + path.name)
        assert response["Content-Disposition"] == f'attachment; filename="{path.name}"'
        assert not response.has_header("Accept-Ranges")  # nginx adds its own
    assert beyond.status_code == 416
    assert not beyond.has_header("X-Accel-Redirect")


def test_it_answers_revalidations_and_head_itself_with_accel(client_for, stored, accel):
    path, _ = stored
    member = client_for("member")
    url = f"/private-team/noarch/{path.name}"
    etag = member.get(url)["ETag"]

    not_modified = member.get(url, HTTP_IF_NONE_MATCH=etag)
    head = member.head(url)

    assert not_modified.status_code == 304
    assert not not_modified.has_header("X-Accel-Redirect")
    assert head.status_code == 200
    assert head["Content-Length"] == str(path.stat().st_size)
    assert not head.has_header("X-Accel-Redirect")


def test_it_hands_nothing_to_nginx_for_callers_who_may_not_read(client_for, stored, accel):
    path, _ = stored
    for who, status in (("outsider", 404), (None, 401)):
        for url in (PRIVATE_REPODATA, f"/private-team/noarch/{path.name}"):
            response = client_for(who).get(url)
            assert response.status_code == status
            assert not response.has_header("X-Accel-Redirect")


def test_it_gives_nginx_the_storage_path_as_it_is(client_for, public_channel, packages, accel):
    path = packages.make("plus", "1.0+local")
    assert upload(client_for("owner"), public_channel.name, path).status_code == 201

    response = client_for().get(f"/{public_channel.name}/noarch/{path.name}")

    assert response.status_code == 200
    assert response["X-Accel-Redirect"].endswith("/plus-1.0+local-0.conda")


def test_it_lets_nginx_cache_its_answers_only_when_told(client_for, stored, accel, settings):
    path, _ = stored
    url = f"/private-team/noarch/{path.name}"
    member = client_for("member")
    assert not member.get(url).has_header("X-Accel-Expires")

    settings.WHARF_ACCEL_CACHE_SECONDS = 2
    answers = [member.get(url), member.get(PRIVATE_REPODATA)]
    refused = [client_for("outsider").get(url), client_for().get(url)]
    head = member.head(url)

    for response in answers:
        assert response["X-Accel-Expires"] == "2"
        assert list(response.headers).index("X-Accel-Expires") < list(response.headers).index(
            "Cache-Control"
        )
    for response in (*refused, head):
        assert not response.has_header("X-Accel-Expires")


# Past the middleware -------------------------------------------------------------------


def test_it_keeps_the_headers_the_skipped_middleware_add(client_for, private_channel):
    response = client_for("member").get(PRIVATE_REPODATA)

    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware still runs
    assert response["Referrer-Policy"] == "same-origin"


def test_it_checks_the_host_on_the_fast_path(client_for, private_channel):
    response = client_for("member").get(PRIVATE_REPODATA, HTTP_HOST="evil.example")

    assert response.status_code == 400


def test_it_answers_other_methods_as_before_naming_put_among_the_allowed(
    client_for, private_channel
):
    response = client_for("member").post(PRIVATE_REPODATA)

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD, PUT"


@pytest.mark.parametrize(
    ("path", "route"),
    [
        (
            "/robotics/noarch/repodata.json",
            ("channel-file", {"channel": "robotics", "path": "noarch/repodata.json"}),
        ),
        (
            "/t/wharf-abc/robotics/linux-64/x.conda",
            (
                "token-channel-file",
                {"token": "wharf-abc", "channel": "robotics", "path": "linux-64/x.conda"},
            ),
        ),
        ("/api/v1/channels/", None),
        ("/admin/login/", None),
        ("/static/wharf.css", None),
        ("/", None),
        ("/robotics", None),
    ],
)
def test_it_takes_the_fast_path_only_for_conda_file_routes(rf, path, route):
    found = routes.fast_route(rf.get(path))
    assert (found and (found[0].name, found[1])) == route


def test_it_leaves_browser_sessions_to_the_usual_middleware(rf, client, users, private_channel):
    request = rf.get(PRIVATE_REPODATA, HTTP_COOKIE="sessionid=abc")
    assert routes.fast_route(request) is None

    client.force_login(users["member"])
    assert client.get(PRIVATE_REPODATA).status_code == 200


# One route table -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/robotics/noarch/repodata.json.zst", "channel-file"),
        ("/robotics/channeldata.json", "channel-file"),
        ("/robotics/label/dev/linux-64/x-1.0-0.conda", "label-channel-file"),
        ("/robotics/label/dev/channeldata.json", "label-channel-file"),
        ("/robotics/notices.json", "channel-file"),
        ("/t/wharf-abc/robotics/label/dev/notices.json", "token-label-channel-file"),
        ("/t/wharf-abc/robotics/osx-arm64/repodata.json", "token-channel-file"),
        ("/t/wharf-abc/robotics/label/dev/noarch/repodata.json", "token-label-channel-file"),
    ],
)
def test_the_fast_path_takes_the_route_url_resolution_would(rf, path, name):
    pattern, arguments = routes.fast_route(rf.get(path))
    resolved = resolve(path)

    assert (pattern.name, pattern.callback, arguments) == (name, channel_file, resolved.kwargs)
    assert (resolved.url_name, resolved.func) == (name, channel_file)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/robotics/", "channel"),
        ("/robotics/upload/", "channel-upload"),
        ("/robotics/packages/numpy/", "package"),
        ("/robotics/packages/numpy/files/noarch/numpy-1.0-0.conda/yank/", "package-file-yank"),
        ("/admin/noarch/repodata.json", "admin:django.contrib.admin.sites.catch_all_view"),
    ],
)
def test_pages_and_reserved_names_win_over_the_conda_routes(rf, path, name):
    assert resolve(path).view_name == name
    assert routes.fast_route(rf.get(path)) is None


def test_a_path_the_table_does_not_match_takes_no_fast_path(rf):
    request = rf.get("/robotics/noarch/repodata.json%0A")
    assert request.path_info.endswith("\n")  # "$" alone matches before a final newline

    with pytest.raises(Resolver404):
        resolve(request.path_info)
    assert routes.fast_route(request) is None


def test_each_conda_route_is_counted_by_its_name_with_or_without_the_fast_path(
    client, client_for, tokens, users, stored
):
    token = tokens["member"]
    urls = {
        "channel-file": "/private-team/noarch/repodata.json",
        "label-channel-file": "/private-team/label/main/noarch/repodata.json",
        "token-channel-file": f"/t/{token}/private-team/noarch/repodata.json",
        "token-label-channel-file": f"/t/{token}/private-team/label/main/noarch/repodata.json",
    }

    def counted(name):
        labels = {"method": "GET", "route": name, "status": "200"}
        return REGISTRY.get_sample_value("wharf_http_requests_total", labels) or 0

    before = {name: counted(name) for name in urls}
    fast = client_for("member")
    for url in urls.values():
        assert fast.get(url).status_code == 200
    client.force_login(users["member"])  # a session: URL resolution, no fast path
    for name in ("channel-file", "label-channel-file"):
        assert client.get(urls[name]).status_code == 200

    assert {name: counted(name) - before[name] for name in urls} == {
        "channel-file": 2,
        "label-channel-file": 2,
        "token-channel-file": 1,
        "token-label-channel-file": 1,
    }
