"""Security headers on every kind of answer, and a content security policy that allows
only Wharf's own scripts and styles: in the templates, the answers and a real browser.
"""

import re

import pytest
from django.conf import settings as django_settings

from registry import security

from ..deployment import ROOT
from ..packages import catalog_file, upload, wait_for_index

PUBLIC_REPODATA = "/open-tools/noarch/repodata.json"


# Security headers ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_every_kind_of_answer_carries_the_security_headers(
    client, client_for, users, public_channel, packages
):
    path = packages.make("headed", "1.0")
    assert upload(client_for("owner"), "open-tools", path).status_code == 201
    wait_for_index(public_channel, "noarch")
    answers = {
        "page": client.get("/open-tools/"),
        "404 page": client.get("/no-such-channel/"),
        "REST": client_for("member").get("/api/v1/channels/"),
        "conda index, fast path": client_for("member").get(PUBLIC_REPODATA),
        "package file, fast path": client.get(f"/open-tools/noarch/{path.name}"),
    }
    static = client.get("/static/wharf.css")

    for kind, response in [*answers.items(), ("static file", static)]:
        policy = response["Content-Security-Policy"]
        assert policy == django_settings.WHARF_CONTENT_SECURITY_POLICY, kind
        assert response["X-Content-Type-Options"] == "nosniff", kind
        assert response["Referrer-Policy"] == "same-origin", kind
    for kind, response in answers.items():  # a stylesheet is framed by nothing anyway
        assert response["X-Frame-Options"] == "DENY", kind


def test_the_policy_allows_only_wharfs_own_scripts_and_styles():
    directives = dict(part.strip().split(" ", 1) for part in security.policy().split(";"))

    assert directives["script-src"] == directives["style-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"


@pytest.mark.django_db
def test_only_the_api_docs_allow_inline_styles_and_no_page_has_inline_scripts(client):
    docs = client.get("/api/v1/docs/")
    script = client.get("/api/v1/docs/?script=")

    assert docs.status_code == script.status_code == 200
    assert "style-src 'self' 'unsafe-inline'" in docs["Content-Security-Policy"]
    assert "script-src 'self';" in docs["Content-Security-Policy"]
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", docs.content.decode()) == []
    assert "'unsafe-inline'" not in client.get("/").get("Content-Security-Policy")


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+=\"", re.I)


def templates_of_pages():
    return [
        pytest.param(path, id=str(path.relative_to(ROOT / "templates")))
        for path in sorted((ROOT / "templates").rglob("*.html"))
    ]


@pytest.mark.parametrize("path", templates_of_pages())
def test_no_template_has_inline_scripts_or_event_handlers(path):
    assert INLINE_SCRIPT.findall(path.read_text()) == []


# The policy in a real browser ------------------------------------------------------------


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_no_page_breaks_the_content_security_policy_in_a_browser(
    live_server_url, monkeypatch, django_user_model, users, public_channel
):
    """Every kind of page, the admin and Swagger UI load in chromium without a single
    CSP violation (chromium reports each one on the console)."""
    from playwright.sync_api import expect

    from ..browser import browser_context, sign_in

    root = django_user_model.objects.create_superuser("root", "root@example.org", "pw-root")
    catalog_file(public_channel, "noarch", "shown", "1.0", summary="Shown")
    from packages_app.discovery import catalog

    catalog.refresh(public_channel, ["shown"])
    pages = [
        "/accounts/login/",
        "/",
        "/channels/",
        "/search/?q=shown",
        "/open-tools/",
        "/open-tools/packages/shown/",
        "/open-tools/upload/",
        "/open-tools/members/",
        "/open-tools/settings/",
        "/open-tools/audit/",
        "/settings/keys/",
        "/admin/",
        f"/admin/channels_app/channel/{public_channel.pk}/change/",
        "/admin/accounts/auditevent/",
    ]
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    violations = []
    with browser_context(live_server_url) as context:
        page = context.new_page()
        page.on(
            "console",
            lambda message: (
                violations.append((page.url, message.text))
                if "Content Security Policy" in message.text
                else None
            ),
        )
        page.goto("/accounts/login/")
        sign_in(context, root, live_server_url)
        for path in pages:
            response = page.goto(path)
            assert response.status == 200, path
        page.goto("/api/v1/docs/")
        expect(page.locator(".opblock").first).to_be_visible()  # the schema was loaded

    assert violations == []
