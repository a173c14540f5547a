"""Length limits of what owners write about a channel — its description and its related
channels' URLs — through REST, the pages, the admin and the domain function. One character
over the limit is a 400 (the admin: its form again) naming the limit, and nothing stored
changes; exactly at the limit is accepted."""

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from channels_app.lifecycle import create_channel
from channels_app.models import Channel, RelatedChannel

from ..admin import form_data
from ..forms import browser, shown_errors, submit, too_long, too_long_for_the_api

pytestmark = pytest.mark.django_db

DESCRIPTION = Channel._meta.get_field("description").max_length
URL = RelatedChannel._meta.get_field("url").max_length
SETTINGS = "/private-team/settings/"


def description(length):
    return "d" * length


def url_of(length):
    """An http(s) channel URL of exactly ``length`` characters."""
    base = "https://conda.example.org/"
    return base + "c" * (length - len(base))


def stored_description(channel):
    channel.refresh_from_db()
    return channel.description


# Description -------------------------------------------------------------------------------


def test_the_description_limit_is_bounded_and_generous():
    assert 2000 <= DESCRIPTION <= 10000


def test_rest_refuses_a_new_channel_whose_description_is_over_the_limit(client_for, users):
    api = client_for("owner")

    refused = api.post(
        "/api/v1/channels/", {"name": "wordy", "description": description(DESCRIPTION + 1)},
        format="json",
    )  # fmt: skip
    accepted = api.post(
        "/api/v1/channels/", {"name": "full", "description": description(DESCRIPTION)},
        format="json",
    )  # fmt: skip

    assert refused.status_code == 400
    assert refused.json() == {"description": [too_long_for_the_api(DESCRIPTION)]}
    assert not Channel.objects.filter(name="wordy").exists()
    assert accepted.status_code == 201
    assert Channel.objects.get(name="full").description == description(DESCRIPTION)


def test_rest_refuses_a_description_change_over_the_limit(client_for, private_channel):
    url = f"/api/v1/channels/{private_channel.name}/"
    api = client_for("owner")

    refused = api.patch(url, {"description": description(DESCRIPTION + 1)}, format="json")
    unchanged = stored_description(private_channel)
    accepted = api.patch(url, {"description": description(DESCRIPTION)}, format="json")

    assert refused.status_code == 400
    assert refused.json() == {"description": [too_long_for_the_api(DESCRIPTION)]}
    assert unchanged == "Ours"
    assert accepted.status_code == 200
    assert stored_description(private_channel) == description(DESCRIPTION)


def test_the_new_channel_page_refuses_a_description_over_the_limit(users):
    client = browser(users["owner"])

    refused = submit(
        client, "/channels/new/", {"name": "wordy", "description": description(DESCRIPTION + 1)}
    )
    accepted = submit(
        client, "/channels/new/", {"name": "full", "description": description(DESCRIPTION)}
    )

    assert refused.status_code == 400
    assert shown_errors(refused, "description") == [too_long(DESCRIPTION)]
    assert not Channel.objects.filter(name="wordy").exists()
    assert accepted.status_code == 302
    assert Channel.objects.get(name="full").description == description(DESCRIPTION)


def test_the_settings_page_refuses_a_description_over_the_limit(users, private_channel):
    client = browser(users["owner"])
    data = {"private": "on", "related_channels": ""}

    refused = submit(client, SETTINGS, {**data, "description": description(DESCRIPTION + 1)})
    unchanged = stored_description(private_channel)
    accepted = submit(client, SETTINGS, {**data, "description": description(DESCRIPTION)})

    assert refused.status_code == 400
    assert shown_errors(refused, "description") == [too_long(DESCRIPTION)]
    assert unchanged == "Ours"
    assert accepted.status_code == 302
    assert stored_description(private_channel) == description(DESCRIPTION)


def test_the_admin_refuses_a_description_over_the_limit(users, private_channel):
    client = browser(users["owner"])
    url = f"/admin/channels_app/channel/{private_channel.pk}/change/"
    page = client.get(url)

    refused = submit(client, url, {**form_data(page), "description": description(DESCRIPTION + 1)})
    unchanged = stored_description(private_channel)
    accepted = submit(client, url, {**form_data(page), "description": description(DESCRIPTION)})

    # The admin shows its form again with the error, as Django's admin does (a 200).
    assert refused.status_code == 200
    assert shown_errors(refused, "description", form="adminform") == [too_long(DESCRIPTION)]
    assert unchanged == "Ours"
    assert accepted.status_code == 302
    assert stored_description(private_channel) == description(DESCRIPTION)


def test_creating_a_channel_refuses_a_description_over_the_limit(users):
    """The domain function (import_channel and the admin's add page go through it)."""
    with pytest.raises(ValidationError) as refused:
        create_channel(users["owner"], "wordy", description=description(DESCRIPTION + 1))
    created = create_channel(users["owner"], "full", description=description(DESCRIPTION))

    assert refused.value.message_dict == {"description": [too_long(DESCRIPTION)]}
    assert not Channel.objects.filter(name="wordy").exists()
    assert created.description == description(DESCRIPTION)


# Related channels' URLs ----------------------------------------------------------------------


def test_the_settings_page_refuses_a_related_channel_url_over_the_limit(users, private_channel):
    client = browser(users["owner"])
    data = {"description": "Ours", "private": "on"}

    refused = submit(client, SETTINGS, {**data, "related_channels": url_of(URL + 1)})
    unchanged = list(private_channel.related.all())
    accepted = submit(client, SETTINGS, {**data, "related_channels": url_of(URL)})

    assert refused.status_code == 400
    [error] = shown_errors(refused, "related_channels")
    assert f"has {URL + 1} characters; a related channel's URL has at most {URL}." in error
    assert url_of(URL + 1) not in error  # named by its start, not repeated whole
    assert unchanged == []
    assert accepted.status_code == 302
    assert [r.url for r in private_channel.related.all()] == [url_of(URL)]


def test_the_admin_refuses_a_related_channel_url_over_the_limit(users, private_channel):
    client = browser(users["owner"])
    url = f"/admin/channels_app/channel/{private_channel.pk}/change/"
    page = client.get(url)
    formset = next(
        inline.formset
        for inline in page.context["inline_admin_formsets"]
        if inline.formset.model is RelatedChannel
    )
    prefix = formset.prefix

    def with_related(line):
        row = {f"{prefix}-TOTAL_FORMS": "1", f"{prefix}-0-position": "0", f"{prefix}-0-url": line}
        return {**form_data(page), **row}

    refused = submit(client, url, with_related(url_of(URL + 1)))
    unchanged = list(private_channel.related.all())
    accepted = submit(client, url, with_related(url_of(URL)))

    assert refused.status_code == 200
    assert too_long(URL) in refused.content.decode()
    assert unchanged == []
    assert accepted.status_code == 302
    assert [r.url for r in private_channel.related.all()] == [url_of(URL)]


# Rows stored before the limits -----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_descriptions_stored_longer_before_the_limits_survive_their_migrations():
    before = [("accounts", "0004_organizations"), ("channels_app", "0004_organizations")]
    after = [("accounts", "0005_description_lengths"), ("channels_app", "0005_description_lengths")]
    long = "x" * (DESCRIPTION * 2)
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate(before)
        old = executor.loader.project_state(before).apps
        old.get_model("channels_app", "Channel").objects.create(name="wordy", description=long)
        organization = old.get_model("accounts", "Organization").objects.create(
            name="wordy", description=long
        )
        old.get_model("accounts", "Team").objects.create(
            organization=organization, name="wordy", description=long
        )
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        new = executor.loader.project_state(after).apps
        kept = [
            new.get_model(app, model).objects.get(name="wordy").description
            for app, model in [
                ("channels_app", "Channel"), ("accounts", "Organization"), ("accounts", "Team")
            ]
        ]  # fmt: skip
        assert kept == [long] * 3
    finally:
        MigrationExecutor(connection).migrate(leaves)
