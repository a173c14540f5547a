"""Length limits of what maintainers write about a package file — a yank's reason and label
names — through REST, the package page and the admin's actions. One character over the
limit is refused (REST and the page: a 400) naming the limit, and the file stays as it
was; exactly at the limit is accepted."""

import pytest
from django.utils.html import escape

from packages_app.discovery import catalog
from packages_app.files import labels, yanking
from packages_app.models import MAIN_LABEL, FileLabel, PackageFile, SubdirIndex

from ..forms import browser, submit, too_long_for_the_api
from ..packages import catalog_file

pytestmark = pytest.mark.django_db

REASON = yanking.REASON_MAX_LENGTH
LABEL = labels.NAME_MAX_LENGTH
PAGE = "/open-tools/packages/demo/"
ADMIN = "/admin/packages_app/packagefile/"


@pytest.fixture
def demo(public_channel):
    package_file = catalog_file(public_channel, "linux-64", "demo", "1.0")
    catalog.refresh(public_channel, ["demo"])
    return package_file


def file_url(package_file, action):
    return f"{PAGE}files/{package_file.subdir}/{package_file.filename}/{action}/"


def api_url(package_file, action):
    if action == "yank":
        return f"/api/v1/yank/open-tools/{package_file.subdir}/{package_file.filename}"
    return (
        f"/api/v1/channels/open-tools/files/{package_file.subdir}/{package_file.filename}/labels/"
    )


def yank_state(package_file):
    package_file.refresh_from_db()
    return package_file.yanked, package_file.yank_reason


def label_names(package_file):
    return PackageFile.objects.get(pk=package_file.pk).label_names


def reason_refusal(length):
    return f"The reason is {length} characters long; at most {REASON}."


def label_refusal(name):
    return (
        f"'{name[:40]}…' is not a label name: it has {len(name)} characters, a label name at "
        f"most {LABEL}."
    )


def test_the_reason_limit_is_bounded_and_generous():
    assert 500 <= REASON <= 2000


def test_a_label_name_at_the_limit_fits_every_column_that_stores_labels():
    for model in (FileLabel, SubdirIndex):
        assert model._meta.get_field("label").max_length >= LABEL, model


# Yank reasons --------------------------------------------------------------------------------


def test_rest_refuses_a_yank_reason_over_the_limit(client_for, demo):
    api = client_for("maintainer")

    refused = api.post(api_url(demo, "yank"), {"reason": "r" * (REASON + 1)}, format="json")
    unchanged = yank_state(demo)
    accepted = api.post(api_url(demo, "yank"), {"reason": "r" * REASON}, format="json")

    assert refused.status_code == 400
    assert refused.json() == {"reason": [reason_refusal(REASON + 1)]}
    assert unchanged == (False, "")
    assert accepted.status_code == 200
    assert yank_state(demo) == (True, "r" * REASON)


def test_the_package_page_refuses_a_yank_reason_over_the_limit(users, demo):
    client = browser(users["maintainer"])
    page = client.get(PAGE)

    refused = submit(client, file_url(demo, "yank"), {"reason": "r" * (REASON + 1)}, page=page)
    unchanged = yank_state(demo)
    accepted = submit(client, file_url(demo, "yank"), {"reason": "r" * REASON}, page=page)

    assert f'maxlength="{REASON}"' in page.content.decode()
    assert refused.status_code == 400
    assert escape(reason_refusal(REASON + 1)) in refused.content.decode()
    assert unchanged == (False, "")
    assert accepted.status_code == 302
    assert yank_state(demo) == (True, "r" * REASON)


def test_the_admin_refuses_a_yank_reason_over_the_limit(users, demo):
    client = browser(users["owner"])
    page = client.get(ADMIN)
    action = {"action": "yank_selected", "_selected_action": [demo.pk], "apply": "1"}

    refused = submit(client, ADMIN, {**action, "reason": "r" * (REASON + 1)}, page=page)
    unchanged = yank_state(demo)
    accepted = submit(client, ADMIN, {**action, "reason": "r" * REASON}, page=page)

    assert escape(reason_refusal(REASON + 1)) in refused.content.decode()
    assert unchanged == (False, "")
    assert accepted.status_code == 302
    assert yank_state(demo) == (True, "r" * REASON)


# Label names ---------------------------------------------------------------------------------


def test_rest_refuses_a_label_name_over_the_limit(client_for, demo):
    api = client_for("maintainer")
    over, at = "l" * (LABEL + 1), "l" * LABEL

    refused = api.post(api_url(demo, "labels"), {"add": [over]}, format="json")
    unchanged = label_names(demo)
    accepted = api.post(api_url(demo, "labels"), {"add": [at]}, format="json")

    assert refused.status_code == 400
    assert refused.json() == {"labels": [label_refusal(over)]}
    assert unchanged == [MAIN_LABEL]
    assert accepted.status_code == 200
    assert label_names(demo) == sorted([MAIN_LABEL, at])


def test_rest_refuses_a_move_to_a_label_name_over_the_limit(client_for, demo):
    api = client_for("maintainer")
    url = "/api/v1/channels/open-tools/labels/main/move/"
    over, at = "l" * (LABEL + 1), "l" * LABEL

    refused = api.post(url, {"to": over, "copy": True}, format="json")
    unchanged = label_names(demo)
    accepted = api.post(url, {"to": at, "copy": True}, format="json")

    assert refused.status_code == 400
    assert refused.json() == {"to": [too_long_for_the_api(LABEL)]}
    assert unchanged == [MAIN_LABEL]
    assert accepted.status_code == 200
    assert label_names(demo) == sorted([MAIN_LABEL, at])


def test_the_package_page_refuses_a_label_name_over_the_limit(users, demo):
    client = browser(users["maintainer"])
    page = client.get(PAGE)
    over, at = "l" * (LABEL + 1), "l" * LABEL

    refused = submit(client, file_url(demo, "labels"), {"labels": f"main, {over}"}, page=page)
    unchanged = label_names(demo)
    accepted = submit(client, file_url(demo, "labels"), {"labels": f"main, {at}"}, page=page)

    assert refused.status_code == 400
    assert escape(label_refusal(over)) in refused.content.decode()
    assert unchanged == [MAIN_LABEL]
    assert accepted.status_code == 302
    assert label_names(demo) == sorted([MAIN_LABEL, at])


def test_the_admin_refuses_a_label_name_over_the_limit(users, demo):
    client = browser(users["owner"])
    page = client.get(ADMIN)
    action = {"action": "label_selected", "_selected_action": [demo.pk], "apply": "1"}
    over, at = "l" * (LABEL + 1), "l" * LABEL

    refused = submit(client, ADMIN, {**action, "add": over, "remove": ""}, page=page)
    unchanged = label_names(demo)
    accepted = submit(client, ADMIN, {**action, "add": at, "remove": ""}, page=page)

    assert escape(label_refusal(over)) in refused.content.decode()
    assert unchanged == [MAIN_LABEL]
    assert accepted.status_code == 302
    assert label_names(demo) == sorted([MAIN_LABEL, at])
