import orjson
import pytest

from packages_app.intake.importing import import_files
from packages_app.models import PackageFile

from ..packages import wait_for_index

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_imports_checked_files_once_and_indexes_them(
    public_channel, packages, tmp_path, client_for
):
    good = [packages.make(f"bulk{i}", "1.0", "linux-64") for i in range(5)]
    good.append(packages.make("legacy", "1.0", extension=".tar.bz2"))
    bad = tmp_path / "broken-1.0-0.conda"
    bad.write_bytes(b"not a zip")

    result = import_files(public_channel, [*good, bad], batch_size=4, workers=2)
    again = import_files(public_channel, good, batch_size=4, workers=2)

    assert (result.imported, result.skipped) == (6, 0)
    assert "not a readable zip" in result.refused[str(bad)]
    assert (again.imported, again.skipped) == (0, 6)
    assert PackageFile.objects.filter(channel=public_channel).count() == 6
    wait_for_index(public_channel, "linux-64")
    wait_for_index(public_channel, "noarch")
    linux = client_for().get(f"/{public_channel.name}/linux-64/repodata.json")
    names = orjson.loads(b"".join(linux.streaming_content))["packages.conda"]
    assert sorted(names) == sorted(p.name for p in good[:5])
