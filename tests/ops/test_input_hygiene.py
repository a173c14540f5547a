"""Input hygiene: NUL and the other control characters, in a path, a query string, a header
or a body, are refused with 400 on every route before anything is looked up or stored;
REST errors are JSON, those Django answers before DRF sees the request included, and web
pages keep their HTML error pages.

PostgreSQL is where a NUL breaks (it cannot store one in text, and a query naming one
answered 500): CI runs this file there too.
"""

import re

import orjson
import pytest
from django.apps import apps
from django.test import Client
from django.urls import URLResolver, get_resolver
from django.utils.regex_helper import normalize

from accounts.models import ApiToken
from channels_app.models import Channel
from packages_app.models import PackageFile

from ..matrices import test_isolation as isolation
from ..matrices.test_isolation import LIST_ROUTES, PRIVATE, Visitor, route_cases
from ..packages import catalog_file, sha256_of, wait_for_index

# NUL, which PostgreSQL cannot store, and other C0 characters and DEL.
CONTROLS = ["\x00", "\x01", "\t", "\n", "\r", "\x1b", "\x1f", "\x7f"]
# Python's URL parsing drops these three from a URL: they go percent-encoded only.
STRIPPED_FROM_URLS = {"\t", "\n", "\r"}
MISSING = "no-such-channel"
MISSING_PK = "987654321"


def encoded(control):
    return f"%{ord(control):02X}"


def other_control(index, choices=CONTROLS[1:]):
    """A control character other than NUL, a different one for each ``index``."""
    return choices[index % len(choices)]


def header_control(index):
    """The same for a header value, where a tab is allowed (RFC 9110)."""
    return other_control(index, [control for control in CONTROLS[1:] if control != "\t"])


def as_sent(control):
    """``control`` raw in a URL where a client can send it so, else percent-encoded."""
    return encoded(control) if control in STRIPPED_FROM_URLS else control


def in_last_segment(path, text):
    """``path`` with ``text`` at the end of its last segment, before a trailing slash."""
    head, mark, query = path.partition("?")
    stripped = head.rstrip("/")
    if not stripped:  # the home page
        return "/" + text + mark + query
    return stripped + text + head[len(stripped) :] + mark + query


def with_query(path, text):
    return path + ("&" if "?" in path else "?") + "q=x" + text


def every_row():
    """Every row of every model's table, as values: what no refused request may change."""
    return {
        model._meta.label: list(model.objects.order_by("pk").values())
        for model in apps.get_models()
    }


def changed_tables(before):
    after = every_row()
    return [label for label, rows in before.items() if after[label] != rows]


def refusal_problems(where, response, part=None):
    """What is wrong with ``response`` as the refusal of a request to ``where``."""
    if response.status_code != 400:
        return [f"{where}: {response.status_code}, expected 400"]
    body = response.content.decode()
    if where.startswith("/api/"):
        if response["Content-Type"] != "application/json":
            return [f"{where}: {response['Content-Type']}, expected JSON"]
        body = orjson.loads(body)["detail"]
    elif not response["Content-Type"].startswith("text/plain"):
        return [f"{where}: {response['Content-Type']}, expected text/plain"]
    if part and not body.startswith(f"{part} contains a control character"):
        return [f"{where}: {body!r} does not name {part}"]
    return []


# The isolation matrix's routes ---------------------------------------------------------

# Its world: a private channel with an indexed package, a label, an organisation.
world = isolation.world


@pytest.mark.django_db(transaction=True)
def test_every_route_of_the_isolation_matrix_refuses_control_characters(world, tokens):
    values = world["values"]
    owner, anonymous = world["visitors"]["owner"], world["visitors"]["anonymous"]
    paths = []  # (path with {taint} where the control goes, credential forms)
    for index, (_kind, _name, path, form) in enumerate(route_cases()):
        if "{channel}" in path:  # the name looked up
            paths.append((index, path.format(channel=PRIVATE + "{taint}", **values), form))
        else:  # the admin's, by id
            paths.append((index, in_last_segment(path.format(**values), "{taint}"), form))
    for index, (path, _shown) in enumerate(LIST_ROUTES.values(), start=len(paths)):
        paths.append((index, in_last_segment(path, "{taint}"), "bearer"))
    before = every_row()
    problems = []

    for index, path, form in paths:
        for control in ("\x00", other_control(index)):
            for visitor in (owner, anonymous):
                for taint in {encoded(control), as_sent(control)}:
                    tainted = path.format(taint=taint)
                    problems += refusal_problems(tainted, visitor.send(tainted, form))
                    clean = path.format(taint="")
                    query = with_query(clean, taint)
                    problems += refusal_problems(
                        query, visitor.send(query, form), "The query string"
                    )
        # A token presented with a control character in it, in each form of header.
        for control in ("\x00", header_control(index)):
            for header_form in ("bearer", "x-api-key"):
                clean = path.format(taint="")
                response = Visitor(secret=tokens["owner"] + control).send(clean, header_form)
                problems += refusal_problems(f"{clean} ({header_form})", response)

    assert problems == []
    assert changed_tables(before) == []


# Every URL pattern -----------------------------------------------------------------------


def every_url_pattern(patterns=None, prefix=""):
    """(regex, path format, parameter names) of every URL pattern: ours, the included
    tables, the admin's and allauth's."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        regex = prefix + entry.pattern.regex.pattern.removeprefix("^")
        if isinstance(entry, URLResolver):
            yield from every_url_pattern(entry.url_patterns, regex)
        else:
            (path_format, parameters), *_ = normalize(regex)
            yield regex, path_format, parameters


def sample_path(regex, path_format, parameters, channel):
    """A path that ``regex`` matches: each parameter ``channel``, or else the first of a
    missing id, an app label and a plain word that fits."""
    values = dict.fromkeys(parameters, channel)
    for name in parameters:
        for candidate in (channel, MISSING_PK, "accounts", "x"):
            values[name] = candidate
            if re.fullmatch(regex, path_format % values):
                break
    path = path_format % values
    assert re.fullmatch(regex, path), f"no sample for {regex}"
    return "/" + path, values


def url_pattern_cases(channel):
    """(number, regex, path, path with {taint} in its first parameter or last segment)."""
    for index, (regex, path_format, parameters) in enumerate(every_url_pattern()):
        path, values = sample_path(regex, path_format, parameters, channel)
        if parameters:
            first = parameters[0]
            values = {**values, first: values[first] + "{taint}"}
            tainted = "/" + (path_format % values)
        else:
            tainted = in_last_segment(path, "{taint}")
        yield index, regex, path, tainted


def test_the_url_patterns_walked_are_all_of_them():
    regexes = [regex for regex, _, _ in every_url_pattern()]

    assert len(regexes) > 150  # ours, the admin's and allauth's
    for expected in ("api/v1/orgs/(?P<org>[^/]+)/\\Z", "search/\\Z", "admin/"):
        assert any(regex.startswith(expected) for regex in regexes), expected


@pytest.mark.django_db
def test_every_url_pattern_refuses_control_characters_in_path_query_and_headers(
    users, tokens, private_channel
):
    anonymous = Client()
    owner = Client()
    owner.force_login(users["owner"])
    before = every_row()
    problems = []

    for index, _regex, path, tainted in url_pattern_cases(PRIVATE):
        other, in_header = other_control(index), header_control(index)
        requests = [
            ("The URL path", anonymous, tainted.format(taint="%00"), {}),
            ("The URL path", owner, tainted.format(taint=as_sent(other)), {}),
            ("The query string", owner, with_query(path, "%00"), {}),
            ("The query string", anonymous, with_query(path, as_sent(other)), {}),
            ("The X-Api-Key header", anonymous, path, {"X-API-Key": tokens["owner"] + "\x00"}),
            ("The Authorization header", anonymous, path,
             {"Authorization": f"Bearer {tokens['owner']}{in_header}"}),
            ("The User-Agent header", owner, path, {"User-Agent": f"conda/25.1{in_header}"}),
        ]  # fmt: skip
        for part, client, request_path, headers in requests:
            response = client.get(request_path, headers=headers)
            problems += refusal_problems(request_path, response, part)

    assert problems == []
    assert changed_tables(before) == []


# Bodies ----------------------------------------------------------------------------------

JSON_BODY = orjson.dumps(
    {
        "name": "fresh\x00",
        "description": "a\x01b",
        "reason": "bad\x00",
        "labels": ["dev\x00"],
        "to\x00": "main",
        "username": "outsider\x00",
    }
)
FORM_BODY = "name=fresh%00&description=a%01b&reason=bad%00&labels=dev%00&username=outsider%00"


@pytest.mark.django_db
def test_every_url_pattern_refuses_control_characters_in_form_and_json_bodies(
    users, tokens, private_channel
):
    """As the owner, by session and token, each route named on a missing channel or object:
    a route that ignores its body then changes nothing either."""
    owner = Client(headers={"Authorization": f"Bearer {tokens['owner']}"})
    owner.force_login(users["owner"])
    assert owner.get("/api/v1/tokens/").status_code == 200  # its first use is recorded
    before = every_row()
    problems = []

    for _index, _regex, path, _tainted in url_pattern_cases(MISSING):
        form = owner.post(path, FORM_BODY, content_type="application/x-www-form-urlencoded")
        if path.startswith("/api/"):
            # DRF's parsers check what they parse; a route that reads no body answers
            # as it would to any body (404 for the missing channel, 405, ...).
            for response in (form, owner.post(path, JSON_BODY, content_type="application/json")):
                if response.status_code >= 500:
                    problems.append(f"{path}: {response.status_code}")
                elif response.status_code == 400 and "control character" not in str(
                    response.json()
                ):
                    problems.append(f"{path}: 400 for another reason: {response.content!r}")
        else:
            problems += refusal_problems(path, form)
            if form.status_code == 400 and not form.content.startswith(b"A form field"):
                problems.append(f"{path}: {form.content!r} does not name the form")

    assert problems == []
    assert changed_tables(before) == []


@pytest.fixture
def package_file(private_channel):
    """A file of the private channel, labelled main and dev."""
    catalog_file(private_channel, "noarch", "tool", "1.0")
    package_file = PackageFile.objects.get(channel=private_channel)
    return package_file


FILE = "/api/v1/channels/private-team/files/noarch/tool-1.0-0.conda/labels/"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("post", "/api/v1/channels/", {"name": "fresh", "description": "a\x00b"},
         "The field 'description'"),
        ("patch", "/api/v1/channels/private-team/", {"description": "red \x1b[31m"},
         "The field 'description'"),
        ("post", "/api/v1/channels/private-team/members/", {"username": "outsider\x00"},
         "The field 'username'"),
        ("post", "/api/v1/tokens/", {"name": "ci\x00"}, "The field 'name'"),
        ("post", "/api/v1/orgs/", {"name": "acme\x7f"}, "The field 'name'"),
        # Views that read request.data themselves, past any serializer's CharField.
        ("post", "/api/v1/yank/private-team/noarch/tool-1.0-0.conda", {"reason": "bad\x00"},
         "The field 'reason'"),
        ("post", FILE, {"add": ["rc", "dev\x00"]}, "The field 'add[1]'"),
        ("post", "/api/v1/channels/private-team/labels/main/move/", {"to": "dev\x1f"},
         "The field 'to'"),
        ("post", "/api/v1/channels/", {"name": "fresh", "extra": {"deep": [{"x": "\x00"}]}},
         "The field 'extra.deep[0].x'"),
        ("post", "/api/v1/channels/", {"name": "fresh", "descr\x00iption": "x"},
         "A field name ('descr\\x00iption')"),
    ],
)  # fmt: skip
def test_a_rest_body_with_a_control_character_is_refused_naming_the_field(
    client_for, package_file, method, path, body, field
):
    owner = client_for("owner")
    assert owner.get("/api/v1/tokens/").status_code == 200  # its first use is recorded
    before = every_row()

    response = getattr(owner, method)(path, orjson.dumps(body), content_type="application/json")

    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"{field} contains ")
    assert changed_tables(before) == []


@pytest.mark.django_db
@pytest.mark.parametrize("encoding", ["form", "multipart"])
def test_rest_form_fields_with_a_control_character_are_refused_too(
    client_for, private_channel, encoding
):
    owner = client_for("owner")
    fields = {"name": "fresh", "description": "a\x00b"}

    if encoding == "form":
        response = owner.post(
            "/api/v1/channels/", "name=fresh&description=a%00b",
            content_type="application/x-www-form-urlencoded",
        )  # fmt: skip
    else:
        response = owner.post("/api/v1/channels/", fields, format="multipart")

    assert response.status_code == 400
    assert response.json()["detail"].startswith("The field 'description' contains")
    assert not Channel.objects.filter(name="fresh").exists()


@pytest.mark.django_db
def test_tab_newline_and_carriage_return_are_text_in_a_rest_body(client_for, users):
    description = "Two lines\r\nand\ta tab."

    response = client_for("owner").post(
        "/api/v1/channels/", {"name": "fresh", "description": description}, format="json"
    )

    assert response.status_code == 201, response.content
    assert Channel.objects.get(name="fresh").description == description


@pytest.mark.django_db
def test_json_nested_too_deeply_is_a_400_not_a_crash(client_for, users):
    response = client_for("owner").post(
        "/api/v1/channels/", "[" * 100_000, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json() == {"detail": "JSON parse error - the body is nested too deeply."}


# Web forms -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_web_form_with_a_control_character_is_refused_before_it_is_read(users):
    owner = Client()
    owner.force_login(users["owner"])

    response = owner.post(
        "/channels/new/", "name=fresh&description=a%1Bb",
        content_type="application/x-www-form-urlencoded",
    )  # fmt: skip

    assert response.status_code == 400
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.startswith(b"A form field contains a control character")
    assert not Channel.objects.filter(name="fresh").exists()


@pytest.mark.django_db
def test_a_textarea_keeps_its_line_breaks(users, private_channel):
    owner = Client()
    owner.force_login(users["owner"])

    response = owner.post(
        "/private-team/settings/", {"description": "Two lines\r\nand\ta tab", "private": "on"}
    )

    assert response.status_code == 302
    private_channel.refresh_from_db()
    assert private_channel.description == "Two lines\r\nand\ta tab"


@pytest.mark.django_db(transaction=True)
def test_a_package_sent_as_a_raw_body_labelled_as_a_form_is_not_read_as_one(
    tokens, private_channel, packages
):
    """curl --data-binary labels its body application/x-www-form-urlencoded: under /api/
    the body is left to the upload view, control bytes and all."""
    path = packages.make("raw-tool", "1.0")
    api = Client(headers={"X-API-Key": tokens["owner"]})

    response = api.post(
        f"/api/channels/private-team/upload/{path.name}?sha256={sha256_of(path)}",
        path.read_bytes(), content_type="application/x-www-form-urlencoded",
    )  # fmt: skip

    assert response.status_code == 201, response.content
    assert PackageFile.objects.filter(channel=private_channel, filename=path.name).exists()
    wait_for_index(private_channel, "noarch")


# How a refusal answers -------------------------------------------------------------------


@pytest.mark.django_db
def test_a_refusal_is_json_for_clients_that_do_not_take_html_and_carries_security_headers(
    client,
):
    plain = client.get("/search/?q=%00")
    json = client.get("/search/?q=%00", headers={"Accept": "application/json"})
    browser = client.get("/search/?q=%00", headers={"Accept": "text/html"})

    assert plain.status_code == json.status_code == browser.status_code == 400
    assert json.json() == {
        "detail": "The query string contains a control character (such as NUL, %00, or a "
        "newline, %0A); remove it and try again."
    }
    assert browser["Content-Type"] == "text/plain; charset=utf-8"
    for response in (plain, json, browser):
        assert response["X-Content-Type-Options"] == "nosniff"
        assert "Content-Security-Policy" in response


@pytest.mark.django_db
def test_a_tab_inside_a_header_value_is_accepted(client_for, private_channel):
    """RFC 9110 allows tabs inside a field value; nothing else below space."""
    api = client_for("owner")

    response = api.get("/api/v1/channels/private-team/", headers={"User-Agent": "conda\t25.1"})

    assert response.status_code == 200


@pytest.mark.django_db
def test_a_refused_request_does_not_even_use_the_token_it_carries(client, tokens):
    response = client.get(
        "/api/v1/tokens/?q=%00", headers={"Authorization": f"Bearer {tokens['owner']}"}
    )

    assert response.status_code == 400
    assert ApiToken.objects.get(name="owner-token").last_used_at is None


# REST errors are JSON, web errors HTML ----------------------------------------------------


@pytest.mark.django_db
def test_an_oversized_rest_body_is_a_json_413_naming_the_limit(client_for, users, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = orjson.dumps({"name": "fresh", "description": "x" * 2000})

    response = client_for("owner").post("/api/v1/channels/", body, content_type="application/json")

    assert response.status_code == 413
    assert response.json()["detail"].startswith(
        "The request body is larger than the limit of 1000 bytes (DATA_UPLOAD_MAX_MEMORY_SIZE)"
    )
    assert not Channel.objects.filter(name="fresh").exists()


@pytest.mark.django_db
def test_too_many_rest_form_fields_is_a_json_400_naming_the_limit(client_for, users, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    body = "name=fresh&" + "&".join(f"f{number}=1" for number in range(20))

    response = client_for("owner").post(
        "/api/v1/channels/", body, content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 400
    assert response.json() == {
        "detail": "The request has more than 10 fields (DATA_UPLOAD_MAX_NUMBER_FIELDS)."
    }
    assert not Channel.objects.filter(name="fresh").exists()


@pytest.mark.django_db
def test_a_malformed_rest_body_is_a_json_400(client_for, users):
    response = client_for("owner").post(
        "/api/v1/channels/", "{name", content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error")


@pytest.mark.django_db
@pytest.mark.parametrize("limit", ["DATA_UPLOAD_MAX_MEMORY_SIZE", "DATA_UPLOAD_MAX_NUMBER_FIELDS"])
def test_the_web_form_equivalents_stay_html_pages(users, settings, limit):
    setattr(settings, limit, 10)
    owner = Client()
    owner.force_login(users["owner"])

    response = owner.post("/channels/new/", {f"f{number}": "1" for number in range(20)})

    assert response.status_code == 400
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert b"<h1>Bad Request (400)</h1>" in response.content


@pytest.mark.django_db
def test_a_path_under_api_that_no_route_answers_is_a_json_404_and_a_page_an_html_one(client):
    api = client.get("/api/")
    page = client.get("/no-such-channel/")

    assert api.status_code == page.status_code == 404
    assert api.json() == {"detail": "Nothing at /api/."}
    assert page["Content-Type"] == "text/html; charset=utf-8"


@pytest.mark.django_db
def test_a_permission_refused_by_a_page_is_html_and_json_for_a_json_client(users, private_channel):
    member = Client()
    member.force_login(users["member"])

    page = member.get("/private-team/settings/")
    json = member.get("/private-team/settings/", headers={"Accept": "application/json"})

    assert page.status_code == json.status_code == 403
    assert page["Content-Type"] == "text/html; charset=utf-8"
    assert json["Content-Type"] == "application/json"
    assert json.json()["detail"]


@pytest.mark.django_db
def test_a_csrf_failure_under_api_is_json_and_on_a_page_html(users):
    owner = Client(enforce_csrf_checks=True)
    owner.force_login(users["owner"])

    api = owner.post("/api/")
    page = owner.post("/channels/new/", {"name": "fresh"})

    assert api.status_code == page.status_code == 403
    assert api.json()["detail"].startswith("CSRF verification failed: CSRF cookie not set.")
    assert page["Content-Type"] == "text/html; charset=utf-8"
