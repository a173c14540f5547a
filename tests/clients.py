"""The real conda clients in tests: py-rattler solves a channel's specs and installs
what it chose, as a user's environment would be made."""

import asyncio
import json

import rattler


def solve_and_install(channels, auth, tmp_path, monkeypatch, specs=("tool", "helper")):
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps(auth))
    monkeypatch.setenv("RATTLER_AUTH_FILE", str(auth_file))
    client = rattler.Client.authenticated_client()

    async def run():
        gateway = rattler.Gateway(client=client, cache_dir=tmp_path / "repodata-cache")
        records = await rattler.solve(
            channels, list(specs), gateway=gateway, platforms=["linux-64", "noarch"]
        )
        prefix = tmp_path / "env"
        await rattler.install(
            records, prefix, client=client, cache_dir=tmp_path / "pkgs", show_progress=False
        )
        return records, prefix

    return asyncio.run(run())


def installed_names(prefix):
    return sorted(json.loads(p.read_text())["name"] for p in (prefix / "conda-meta").glob("*.json"))


def solve(channel_url, specs, tmp_path):
    async def run():
        gateway = rattler.Gateway(cache_dir=tmp_path / "repodata-cache")
        return await rattler.solve(
            [channel_url], specs, gateway=gateway, platforms=["linux-64", "noarch"]
        )

    return asyncio.run(run())
