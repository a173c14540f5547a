"""Fixtures of the upstream tests: a static upstream channel, and proxy channels of it."""

import pytest

from channels_app.lifecycle import create_channel
from channels_app.sources import attach

from .static import Quiet, StaticChannel


@pytest.fixture
def upstream_networks(settings):
    settings.WHARF_UPSTREAM_PRIVATE_NETWORKS = True


@pytest.fixture
def static_upstream(tmp_path, packages, upstream_networks):
    Quiet.requests = []
    channel = StaticChannel(tmp_path / "upstream", packages)
    yield channel
    channel.stop()


def make_proxy(owner, name, url, private=False, **upstream):
    channel = create_channel(owner, name, private=private, kind="proxy")
    attach(channel, upstream={"url": url, **upstream})
    return channel


@pytest.fixture
def proxy_of(users):
    def make(url, name="forge", private=False, **upstream):
        return make_proxy(users["owner"], name, url, private=private, **upstream)

    return make
