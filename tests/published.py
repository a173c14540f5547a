"""What a channel publishes, as the Django test client reads it: every form of a subdir's
index (repodata.json, .zst, .bz2 and the CEP-16 shards) with the files each lists and
removes."""

import bz2
import io

import msgpack
import orjson
import zstandard


def body(response):
    return b"".join(response.streaming_content) if response.streaming else response.content


def unzstd(data):
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()


def published_forms(client, channel, subdir):
    """Every published form of the subdir's index as (packages, removed) per form name."""
    base = f"/{channel.name}/{subdir}"
    forms = {
        "repodata.json": orjson.loads(body(client.get(f"{base}/repodata.json"))),
        "repodata.json.zst": orjson.loads(unzstd(body(client.get(f"{base}/repodata.json.zst")))),
        "repodata.json.bz2": orjson.loads(
            bz2.decompress(body(client.get(f"{base}/repodata.json.bz2")))
        ),
    }
    result = {
        form: (set(doc["packages"]) | set(doc["packages.conda"]), doc["removed"])
        for form, doc in forms.items()
    }
    index = msgpack.unpackb(unzstd(body(client.get(f"{base}/repodata_shards.msgpack.zst"))))
    packages, removed = set(), []
    for digest in index["shards"].values():
        shard = msgpack.unpackb(
            unzstd(body(client.get(f"{base}/shards/{digest.hex()}.msgpack.zst")))
        )
        packages |= set(shard["packages"]) | set(shard["packages.conda"])
        removed += shard["removed"]
    result["shards"] = (packages, sorted(removed))
    return result
