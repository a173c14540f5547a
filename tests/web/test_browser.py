"""The web pages in a real browser (chromium driven by Playwright) against a live server.

The journey of a new user: sign up, create a private channel, drop two packages on the
upload page, find them, check a signed-out visitor sees nothing, create a key and install
with py-rattler using it.
"""

import re
from urllib.parse import urlsplit

import pytest
import rattler_build
from allauth.account.models import EmailAddress, EmailConfirmationHMAC
from playwright.sync_api import expect

from ..browser import browser_context, drop_files, outside_the_event_loop, sign_in
from ..clients import installed_names, solve_and_install
from ..packages import wait_for_index

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


@pytest.fixture
def page(live_server_url, monkeypatch):
    # Playwright's sync API keeps an asyncio loop in this thread; Django would refuse the
    # test's own database access (fixtures, sign_in) while it runs. No Django code runs
    # inside that loop, so the guard has nothing to protect here.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with browser_context(live_server_url) as context:
        yield context.new_page()


@pytest.fixture
def public_buoy(live_server_url, public_channel, tokens, packages):
    """A public package whose name also matches "harbor": search must keep finding it."""
    buoy = packages.make("harbor-buoy", "0.1", "noarch")
    rattler_build.upload_package_to_prefix(
        [str(buoy)], live_server_url, public_channel.name, api_key=tokens["owner"]
    )
    wait_for_index(public_channel, "noarch")
    return f"/{public_channel.name}/packages/harbor-buoy/"


def upload_outcomes(page):
    return page.locator("#upload-list li")


def test_it_takes_a_new_user_from_sign_up_to_an_installed_package(
    public_buoy, page, live_server_url, packages, tmp_path, monkeypatch
):
    lights = packages.make("harbor-lights", "1.0", "noarch")
    crane = packages.make("harbor-crane", "2.0", "linux-64", depends=["harbor-lights >=1"])

    page.goto("/accounts/signup/")
    page.get_by_label("Email").fill("ada@example.org")
    page.get_by_label("Username").fill("ada")
    page.get_by_label(re.compile(r"^Password:?$")).fill("correct horse battery staple")
    page.get_by_label("Password (again)").fill("correct horse battery staple")
    page.get_by_role("button", name="Sign Up").click()
    topbar = page.get_by_role("navigation", name="Main")
    expect(topbar).to_contain_text("ada")
    expect(topbar.get_by_role("button", name="Sign out")).to_be_visible()

    page.goto("/channels/new/")
    page.get_by_label(re.compile(r"^Name:?$")).fill("harbor")
    page.get_by_label("Description").fill("Packages of the harbor team")
    page.get_by_label("Private").check()
    page.get_by_role("button", name="Create channel").click()
    expect(page).to_have_url(f"{live_server_url}/harbor/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("harbor")
    expect(page.get_by_text("Private", exact=True)).to_be_visible()
    for tab in ("Packages", "Upload", "Members", "Settings"):
        expect(page.get_by_role("link", name=tab, exact=True)).to_be_visible()
    instructions = page.locator("pre").all_inner_texts()
    for tool in ("pixi", "micromamba", "conda"):
        assert any(tool in text and "/harbor" in text for text in instructions), tool

    page.get_by_role("link", name="Upload", exact=True).click()
    expect(page).to_have_url(f"{live_server_url}/harbor/upload/")
    zone = page.locator("div.dropzone")
    expect(zone).to_have_attribute("role", "button")
    drop_files(page, zone, [lights, crane])
    expect(upload_outcomes(page)).to_have_count(2)
    for path in (lights, crane):
        outcome = upload_outcomes(page).filter(has_text=path.name)
        expect(outcome).to_have_class(re.compile(r"\bindexed\b"), timeout=60_000)
        expect(outcome.locator(".outcome")).to_have_text(re.compile(r"^Indexed"))
        expect(outcome.locator("progress")).to_have_js_property("value", 100)

    page.goto("/search/?q=harbor")
    expect(page.locator(f'a[href="{public_buoy}"]').first).to_be_visible()
    for name in ("harbor-lights", "harbor-crane"):
        expect(page.locator(f'a[href="/harbor/packages/{name}/"]').first).to_be_visible()
    page.locator('a[href="/harbor/packages/harbor-crane/"]').first.click()
    expect(page).to_have_url(f"{live_server_url}/harbor/packages/harbor-crane/")
    download = page.locator(f'a[href$="/linux-64/{crane.name}"]').first
    expect(download).to_be_visible()
    response = page.request.get(download.get_attribute("href"))
    assert response.status == 200
    assert response.body() == crane.read_bytes()

    page.goto("/settings/keys/")
    page.get_by_label(re.compile(r"^Name:?$")).fill("laptop")
    page.get_by_label("Read-only").check()
    page.get_by_label("harbor", exact=True).check()
    page.get_by_role("button", name="Create key").click()
    secret_element = page.locator("#new-secret")
    expect(secret_element).to_be_visible()
    secret = secret_element.evaluate("e => (e.value !== undefined ? e.value : e.textContent)")
    secret = secret.strip()
    assert len(secret) > 20

    page.get_by_role("navigation", name="Main").get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("navigation", name="Main")).to_contain_text("Sign in")
    assert page.goto("/harbor/").status == 404
    assert page.goto("/harbor/packages/harbor-crane/").status == 404
    page.goto("/search/?q=harbor")
    expect(page.locator(f'a[href="{public_buoy}"]').first).to_be_visible()
    expect(page.locator('a[href^="/harbor/"]')).to_have_count(0)
    anonymous = page.request.get(f"/harbor/linux-64/{crane.name}")
    assert anonymous.status in (401, 404)

    host = urlsplit(live_server_url).hostname
    records, prefix = outside_the_event_loop(
        solve_and_install,
        [f"{live_server_url}/harbor"],
        {host: {"BearerToken": secret}},
        tmp_path,
        monkeypatch,
        specs=("harbor-crane",),
    )
    assert installed_names(prefix) == ["harbor-crane", "harbor-lights"]


def test_it_reports_why_the_server_refused_a_file(
    page, live_server_url, users, private_channel, tmp_path
):
    broken = tmp_path / "broken-1.0-0.conda"
    broken.write_bytes(b"this is not a zip archive" * 40)
    sign_in(page.context, users["owner"], live_server_url)

    page.goto(f"/{private_channel.name}/upload/")
    zone = page.locator("div.dropzone")
    # The keyboard path of the drop zone: Enter opens the file chooser.
    with page.expect_file_chooser() as chooser:
        zone.press("Enter")
    chooser.value.set_files(broken)

    outcome = upload_outcomes(page).filter(has_text=broken.name)
    expect(outcome).to_have_class(re.compile(r"\bfailed\b"))
    refusal = refusal_of(page, zone.get_attribute("data-upload-url"), broken)
    assert refusal.status == 422
    expect(outcome.locator(".outcome")).to_have_text(refusal.json()["detail"])


def refusal_of(page, upload_url, path):
    """The server's answer to the same upload, asked directly (the browser's network log
    keeps no response bodies of XMLHttpRequests for us)."""
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    return page.request.post(
        upload_url,
        data=path.read_bytes(),
        headers={
            "X-CSRFToken": csrf,
            "X-File-Name": path.name,
            "Content-Type": "application/octet-stream",
        },
    )


def test_it_takes_an_invited_person_into_an_organisations_private_channel(
    page, live_server_url, users
):
    """The owner of a new organisation invites an address; its owner signs up, accepts,
    and reads the organisation's private channel once a team gives them a role on it."""
    sign_in(page.context, users["owner"], live_server_url)
    page.goto("/orgs/new/")
    page.get_by_label(re.compile(r"^Name:?$")).fill("harbour")
    page.get_by_role("button", name="Create organisation").click()
    expect(page).to_have_url(f"{live_server_url}/orgs/harbour/")

    page.get_by_role("link", name="Members", exact=True).click()
    page.get_by_label("Username or e-mail").fill("ada@example.org")
    page.get_by_role("button", name="Invite", exact=True).click()
    expect(page.get_by_role("cell", name="ada@example.org", exact=True)).to_be_visible()

    page.goto("/channels/new/")
    page.get_by_label("Owner").select_option("harbour")
    page.get_by_label(re.compile(r"^Name:?$")).fill("harbour-secrets")
    page.get_by_label("Private").check()
    page.get_by_role("button", name="Create channel").click()
    expect(page).to_have_url(f"{live_server_url}/harbour-secrets/")
    expect(page.get_by_text("Owned by the organisation")).to_be_visible()

    ada = page.context.browser.new_context(base_url=live_server_url).new_page()
    ada.goto("/accounts/signup/")
    ada.get_by_label("Email").fill("ada@example.org")
    ada.get_by_label("Username").fill("ada")
    ada.get_by_label(re.compile(r"^Password:?$")).fill("correct horse battery staple")
    ada.get_by_label("Password (again)").fill("correct horse battery staple")
    ada.get_by_role("button", name="Sign Up").click()
    # Whoever signs up with the address must prove it is theirs before the invitation shows.
    ada.goto("/orgs/")
    expect(ada.locator("[data-unconfirmed]")).to_contain_text("ada@example.org")
    expect(ada.get_by_role("button", name="Accept the invitation to harbour")).to_have_count(0)
    address = EmailAddress.objects.get(email="ada@example.org")
    ada.goto(f"/accounts/confirm-email/{EmailConfirmationHMAC(address).key}/")
    ada.get_by_role("button", name="Confirm").click()
    topbar = ada.get_by_role("navigation", name="Main")
    expect(topbar.get_by_role("link", name=re.compile("Organisations"))).to_contain_text("1")
    topbar.get_by_role("link", name=re.compile("Organisations")).click()
    ada.get_by_role("button", name="Accept the invitation to harbour").click()
    expect(ada).to_have_url(f"{live_server_url}/orgs/harbour/")
    expect(ada.get_by_text("You are member")).to_be_visible()
    # A member of the organisation alone reads none of its private channels.
    expect(ada.locator('a[href="/harbour-secrets/"]')).to_have_count(0)
    assert ada.goto("/harbour-secrets/").status == 404

    page.goto("/orgs/harbour/teams/")
    page.get_by_label(re.compile(r"^Name:?$")).fill("crew")
    page.get_by_role("button", name="Create team").click()
    expect(page).to_have_url(f"{live_server_url}/orgs/harbour/teams/crew/")
    page.get_by_label("Username").fill("ada")
    page.get_by_role("button", name="Add to team").click()
    page.get_by_label("Channel").select_option("harbour-secrets")
    page.get_by_role("button", name="Set role").click()
    expect(page.get_by_role("link", name="harbour-secrets")).to_be_visible()

    ada.goto("/orgs/harbour/")
    ada.locator('a[href="/harbour-secrets/"]').click()
    expect(ada).to_have_url(f"{live_server_url}/harbour-secrets/")
    expect(ada.get_by_role("heading", level=1)).to_contain_text("harbour-secrets")
