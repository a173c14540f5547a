"""Screenshots of every page for the README: `make screenshots` writes docs/screenshots/.

Not collected by `make test` (the name does not start with test_); it runs as a test so it
gets the live server, a worker and the test database with made-up people and packages.
"""

import re
from pathlib import Path

import pytest
import rattler_build
from playwright.sync_api import expect

from channels_app import related
from channels_app.lifecycle import create_channel
from channels_app.models import Membership, Role

from .browser import PHONE, browser_context, drop_files, sign_in
from .packages import wait_for_index

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


@pytest.fixture
def seeded(users, tokens, packages, live_server_url, django_user_model):
    """A team channel with a few packages, a public channel, and an administrator."""
    owner = users["owner"]
    robotics = create_channel(
        owner, "robotics", private=True, description="Drivers and tools of the robotics team."
    )
    for who, role in (("maintainer", Role.MAINTAINER), ("member", Role.MEMBER)):
        Membership.objects.create(channel=robotics, user=users[who], role=role)
    tools = create_channel(owner, "open-tools", description="Command-line tools for everyone.")
    create_channel(owner, "ml-models", private=True, description="Model weights, packaged.")

    built = [
        packages.make("lidar-driver", "1.4.2", "linux-64", summary="Reads point clouds"),
        packages.make("lidar-driver", "1.4.2", "osx-arm64", summary="Reads point clouds"),
        packages.make("lidar-driver", "1.3.0", "linux-64", summary="Reads point clouds"),
        packages.make(
            "robot-arm",
            "0.9.1",
            "noarch",
            depends=["lidar-driver >=1.3", "lidar-viewer 2.*", "python >=3.11", "numpy"],
            constrains=["ros-core >=2"],
            summary="Motion planning for the arm",
            description=(
                "Plans **collision-free** motions for the team's arm.\n\n"
                "- reads point clouds through `lidar-driver`\n"
                "- shows plans in `lidar-viewer`"
            ),
            homepage="https://example.org/robot-arm",
            license="BSD-3-Clause",
        ),
    ]
    rattler_build.upload_package_to_prefix(
        [str(path) for path in built], live_server_url, robotics.name, api_key=tokens["owner"]
    )
    tool = packages.make("lidar-viewer", "2.0.0", "noarch", summary="Shows point clouds")
    rattler_build.upload_package_to_prefix(
        [str(tool)], live_server_url, tools.name, api_key=tokens["owner"]
    )
    related.replace(robotics, [(tools, ""), (None, "https://conda.anaconda.org/conda-forge")])
    for channel, subdir in ((robotics, "linux-64"), (robotics, "osx-arm64"),
                            (robotics, "noarch"), (tools, "noarch")):  # fmt: skip
        wait_for_index(channel, subdir)

    admin = django_user_model.objects.create_superuser("admin", "admin@example.org", "pw-admin")
    return {"owner": owner, "admin": admin, "robotics": robotics}


def shoot(page, name, full_page=False):
    OUT.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=OUT / f"{name}.png", full_page=full_page, animations="disabled")


def test_screenshots(seeded, live_server_url, packages, tmp_path, monkeypatch):
    # Playwright's sync API keeps an asyncio loop in this thread (see tests/browser.py).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with browser_context(live_server_url) as visitor:
        page = visitor.new_page()
        page.goto("/accounts/login/")
        shoot(page, "sign-in")
        assert page.goto("/no-such-channel/").status == 404
        shoot(page, "not-found")

    with browser_context(live_server_url) as context:
        sign_in(context, seeded["owner"], live_server_url)
        page = context.new_page()
        page.goto("/")
        shoot(page, "home")
        page.goto("/channels/")
        shoot(page, "channels")
        page.goto("/robotics/")
        shoot(page, "channel", full_page=True)
        page.goto("/search/?q=lidar")
        shoot(page, "search")
        page.goto("/robotics/packages/robot-arm/")
        shoot(page, "package", full_page=True)

        page.goto("/robotics/upload/")
        broken = tmp_path / "gripper-0.1-0.conda"
        broken.write_bytes(b"not a package" * 50)
        drop_files(
            page,
            page.locator("div.dropzone"),
            [packages.make("gripper", "0.2.0", "noarch", summary="Gripper control"), broken],
        )
        expect(page.locator("#upload-list li.indexed")).to_have_count(1, timeout=60_000)
        expect(page.locator("#upload-list li.failed")).to_have_count(1)
        shoot(page, "upload")

        page.goto("/robotics/members/")
        shoot(page, "members")
        page.goto("/robotics/settings/")
        shoot(page, "channel-settings", full_page=True)

        page.goto("/settings/keys/")
        page.get_by_label(re.compile(r"^Name:?$")).fill("laptop")
        page.get_by_label("robotics", exact=True).check()
        page.get_by_role("button", name="Create key").click()
        expect(page.locator("#new-secret")).to_be_visible()
        shoot(page, "api-keys")

    with browser_context(live_server_url, viewport=PHONE) as phone:
        sign_in(phone, seeded["owner"], live_server_url)
        page = phone.new_page()
        page.goto("/robotics/")
        shoot(page, "channel-phone")

    with browser_context(live_server_url) as context:
        sign_in(context, seeded["admin"], live_server_url)
        page = context.new_page()
        page.goto("/admin/channels_app/channel/")
        expect(page).to_have_title(re.compile("channel", re.IGNORECASE))
        shoot(page, "admin")
