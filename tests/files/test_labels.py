"""Labels as conda clients read them: /<channel>/label/<label>/ serves the files that carry
the label, the channel's own URL those that carry main, to members only when private."""

import asyncio
import json

import orjson
import pytest
import rattler
from django.test import Client

from packages_app.conda import statistics
from packages_app.models import DailyDownloads

from ..clients import solve
from ..labels import base_of, change_labels, published_forms, settle, upload_with
from ..packages import sha256_of, upload
from ..published import body

pytestmark = pytest.mark.django_db(transaction=True)


# Serving -----------------------------------------------------------------------------------


def test_an_upload_to_dev_is_served_by_the_dev_label_only(client, public_channel, dev_and_main):
    stable, beta = dev_and_main

    main = published_forms(client, base_of(public_channel), "linux-64")
    dev = published_forms(client, base_of(public_channel, "dev"), "linux-64")

    assert set(main) == set(dev) == {"repodata.json", "repodata.json.zst",
                                     "repodata.json.bz2", "shards"}  # fmt: skip
    for form in main:
        assert main[form] == ({stable.name}, []), form
        assert dev[form] == ({beta.name}, []), form
    # Clients read noarch wherever they read a platform: the label has one, empty.
    noarch = client.get(f"{base_of(public_channel, 'dev')}/noarch/repodata.json")
    assert noarch.status_code == 200
    assert orjson.loads(body(noarch))["packages.conda"] == {}


def test_channeldata_follows_the_label(client, public_channel, dev_and_main, packages, client_for):
    only_dev = packages.make("preview-tool", "0.1", "linux-64")
    uploaded = upload_with(client_for("owner"), public_channel, only_dev, "label=dev")
    assert uploaded.status_code == 201

    main = orjson.loads(body(client.get(f"/{public_channel.name}/channeldata.json")))
    dev = orjson.loads(body(client.get(f"/{public_channel.name}/label/dev/channeldata.json")))

    assert sorted(main["packages"]) == ["demo"]
    assert main["packages"]["demo"]["version"] == "1.0"
    assert sorted(dev["packages"]) == ["demo", "preview-tool"]
    assert dev["packages"]["demo"]["version"] == "2.0"


def test_package_files_download_from_every_url_of_the_channel(client, public_channel, dev_and_main):
    stable, beta = dev_and_main
    urls = [
        f"/{public_channel.name}/linux-64/{beta.name}",  # the channel's own URL
        f"/{public_channel.name}/label/dev/linux-64/{beta.name}",
        # A file moved away from a label keeps the URL an environment locked to it found.
        f"/{public_channel.name}/label/dev/linux-64/{stable.name}",
    ]

    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
    assert body(client.get(urls[1])) == beta.read_bytes()
    missing = client.get(f"/{public_channel.name}/label/dev/linux-64/absent-1.0-h1_0.conda")
    assert missing.status_code == 404


def test_a_label_nobody_uses_answers_404_naming_it(client, public_channel, dev_and_main):
    stable, _ = dev_and_main
    paths = [
        "linux-64/repodata.json",
        "linux-64/repodata.json.zst",
        "linux-64/repodata_shards.msgpack.zst",
        f"linux-64/{stable.name}",
        "channeldata.json",
    ]

    for label in ("nightly", "Not-A-Label", "x" * 101):
        for path in paths:
            response = client.get(f"/{public_channel.name}/label/{label}/{path}")
            assert response.status_code == 404, (label, path)
            expected = f"No label '{label}' in channel '{public_channel.name}'."
            assert response.json()["detail"] == expected
    # A label that is used answers for every platform, empty where it has no files.
    other_subdir = client.get(f"/{public_channel.name}/label/dev/osx-arm64/repodata.json")
    assert other_subdir.status_code == 200
    assert orjson.loads(body(other_subdir))["info"]["subdir"] == "osx-arm64"


def test_heads_of_label_urls_answer_as_their_gets(client, public_channel, dev_and_main):
    url = f"/{public_channel.name}/label/dev/linux-64/repodata.json"

    head, get = client.head(url), client.get(url)

    assert head.status_code == 200
    assert head["ETag"] == get["ETag"]
    assert head["Content-Length"] == str(len(body(get)))


def test_the_fast_path_and_url_routing_agree_on_label_urls(
    client, users, public_channel, dev_and_main
):
    """With a session cookie a request goes through URL resolution, without one through the
    fast path; both must answer label URLs alike."""
    signed_in = Client()
    signed_in.force_login(users["outsider"])
    paths = [
        "label/dev/linux-64/repodata.json",
        "label/dev/channeldata.json",
        "label/nightly/linux-64/repodata.json",
        "label/dev/",
        "label/dev/linux-64/",
    ]

    for path in paths:
        fast = client.get(f"/{public_channel.name}/{path}")
        routed = signed_in.get(f"/{public_channel.name}/{path}")
        assert (fast.status_code, body(fast)) == (routed.status_code, body(routed)), path


def test_downloads_through_label_urls_count(client, public_channel, dev_and_main):
    _, beta = dev_and_main
    statistics._redis.cache_clear()
    if statistics.settings.REDIS_URL:
        statistics.flush()
    DailyDownloads.objects.all().delete()

    assert client.get(f"/{public_channel.name}/label/dev/linux-64/{beta.name}").status_code == 200
    assert client.get(f"/{public_channel.name}/linux-64/{beta.name}").status_code == 200
    statistics.flush()

    row = DailyDownloads.objects.get(channel=public_channel)
    assert (row.filename, row.downloads) == (beta.name, 2)


# Private channels --------------------------------------------------------------------------


def test_private_label_urls_answer_outsiders_as_missing_channels(
    users, tokens, private_channel, private_dev
):
    anonymous = Client()
    outsider = Client()
    outsider.force_login(users["outsider"])
    by_token = Client(headers={"Authorization": f"Bearer {tokens['outsider']}"})
    outsider_in_url = f"/t/{tokens['outsider']}"
    paths = [
        "label/dev/linux-64/repodata.json",
        "label/dev/linux-64/repodata_shards.msgpack.zst",
        f"label/dev/linux-64/{private_dev.name}",
        "label/dev/channeldata.json",
        "label/unused/linux-64/repodata.json",  # a label the channel does not have
    ]

    for path in paths:
        for visitor, prefix, status in [
            (anonymous, "", 401),
            (outsider, "", 404),
            (by_token, "", 404),
            (anonymous, outsider_in_url, 404),
        ]:
            hidden = visitor.get(f"{prefix}/{private_channel.name}/{path}")
            missing = visitor.get(f"{prefix}/no-such-channel/{path}")
            assert hidden.status_code == missing.status_code == status, (path, prefix)
            assert body(hidden) == body(missing).replace(b"no-such-channel", b"private-team")
            assert hidden.get("WWW-Authenticate") == missing.get("WWW-Authenticate")


def test_members_read_private_labels_by_token_in_the_url_and_by_bearer(
    tokens, private_channel, private_dev
):
    in_url = Client().get(f"/t/{tokens['member']}/{private_channel.name}/label/dev/linux-64/"
                          "repodata.json")  # fmt: skip
    bearer = Client(headers={"Authorization": f"Bearer {tokens['member']}"})
    package = bearer.get(f"/{private_channel.name}/label/dev/linux-64/{private_dev.name}")

    assert in_url.status_code == 200
    assert private_dev.name in orjson.loads(body(in_url))["packages.conda"]
    assert in_url["Cache-Control"].startswith("private")
    assert package.status_code == 200
    assert body(package) == private_dev.read_bytes()


# The real client ---------------------------------------------------------------------------


@pytest.mark.live
def test_rattler_finds_dev_builds_only_through_the_dev_label(
    live_server_url, client_for, tokens, private_channel, packages, tmp_path
):
    stable = packages.make("demo", "1.0", "linux-64")
    beta = packages.make("demo", "2.0", "linux-64")
    owner = client_for("owner")
    assert upload(owner, private_channel.name, stable).status_code == 201
    assert upload_with(owner, private_channel, beta, "label=dev").status_code == 201
    settle(private_channel, "linux-64", "main", "dev")
    channel_url = f"{live_server_url}/t/{tokens['member']}/{private_channel.name}"

    plain = solve(channel_url, ["demo"], tmp_path / "plain")
    dev = solve(f"{channel_url}/label/dev", ["demo"], tmp_path / "dev")
    with pytest.raises(Exception, match="demo"):
        solve(channel_url, ["demo ==2.0"], tmp_path / "pinned")

    assert [str(r.version) for r in plain if r.name.normalized == "demo"] == ["1.0"]
    assert [str(r.version) for r in dev if r.name.normalized == "demo"] == ["2.0"]
    prefix = tmp_path / "env"
    asyncio.run(rattler.install(dev, prefix, cache_dir=tmp_path / "pkgs", show_progress=False))
    installed = [json.loads(p.read_text()) for p in (prefix / "conda-meta").glob("demo-*.json")]
    assert [(r["version"], r["sha256"]) for r in installed] == [("2.0", sha256_of(beta))]
    # Promoted to main, the plain channel finds it.
    assert change_labels(owner, private_channel, beta, labels=["main"]).status_code == 200
    settle(private_channel, "linux-64", "main", "dev")
    promoted = solve(channel_url, ["demo"], tmp_path / "promoted")
    assert [str(r.version) for r in promoted if r.name.normalized == "demo"] == ["2.0"]
