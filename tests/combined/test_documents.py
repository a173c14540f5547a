"""A combined subdir's repodata.json is read from its members' published ones as a
stream, a group of records at a time, and written without being held whole."""

import hashlib
import tempfile

import orjson
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from packages_app.combined import documents
from packages_app.index import repodata

# Text a record may hold that looks like the place where one record ends and the next
# begins, in a string and in a nested object.
TRICKY = {
    "build": "0",
    "depends": ['odd },"other-1.0-0.conda":{ "quoted \\" text', "python >=3.11"],
    "name": "tricky",
    "run_exports": {"weak": ["tricky"]},
    "nested": {
        "a": {"b": {"c": 1}},
        "evil-1.0-0.conda": {"deep": {"x": [1, 2]}},
        "packages.conda": {"d": '}},"removed":'},
    },
    "version": "1.0",
}


def records_of(rows, subdir="noarch"):
    records = repodata.RecordSet(subdir)
    records.replace_names((), rows)
    return records


def stored(data):
    return default_storage.save("test-documents/repodata.json", ContentFile(data))


def a_record(name, version, **extra):
    return repodata.record_json({"name": name, "version": version, "build": "0", **extra})


@pytest.fixture
def published():
    """A repodata.json as Wharf publishes it, of plain records, tricky ones, .tar.bz2
    files and yanked ones."""
    rows = [
        (f"plain-1.{i}-0.conda", "plain", a_record("plain", f"1.{i}"), False) for i in range(40)
    ]
    rows += [
        ("tricky-1.0-0.conda", "tricky", repodata.record_json(TRICKY), False),
        ("tricky-1.0-0.tar.bz2", "tricky", repodata.record_json(TRICKY), False),
        ("zzz-2.0-0.conda", "zzz", a_record("zzz", "2.0", nested={"a": {"b": "}},"}}), False),
        ("gone-1.0-0.conda", "gone", "", True),
    ]
    records = records_of(rows)
    yield records, stored(records.repodata_json())
    default_storage.delete("test-documents/repodata.json")


@pytest.mark.parametrize("group", [1, 64, 1 << 20])
def test_it_reads_every_record_of_a_published_repodata_json(group, published, monkeypatch):
    records, path = published
    monkeypatch.setattr(documents, "GROUP", group)  # cuts everywhere, or none at all
    document = orjson.loads(records.repodata_json())

    seen = {repodata.TAR_BZ2_KEY: {}, repodata.CONDA_KEY: {}}
    removed = None
    for key, group_records in documents.published_records(path, "noarch"):
        if key == "removed":
            removed = group_records
        else:
            assert not set(group_records) & set(seen[key])
            seen[key].update(group_records)

    assert seen[repodata.CONDA_KEY] == document[repodata.CONDA_KEY]
    assert seen[repodata.TAR_BZ2_KEY] == document[repodata.TAR_BZ2_KEY]
    assert removed == ["gone-1.0-0.conda"]


def test_it_refuses_a_document_laid_out_otherwise():
    path = stored(orjson.dumps({"packages": {}, "info": {"subdir": "noarch"}}))

    with pytest.raises(documents.NotPublishedLayout):
        list(documents.published_records(path, "noarch"))
    default_storage.delete(path)


@pytest.mark.parametrize("write", [16, 1 << 20])
def test_it_writes_repodata_json_as_a_record_set_makes_it(write, published, monkeypatch):
    records, _ = published
    monkeypatch.setattr(documents, "WRITE", write)

    with tempfile.TemporaryFile() as out:
        digest, size = documents._write_document(records, out)
        out.seek(0)
        written = out.read()

    assert written == records.repodata_json()
    assert size == len(written)
    assert digest == hashlib.sha256(written).hexdigest()
