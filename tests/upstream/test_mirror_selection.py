"""What a mirror's include/exclude match specs and keep_versions select."""

import pytest

from packages_app.upstream.selection import Selection


def record(name, version, build="h0_0", build_number=0):
    return {"name": name, "version": version, "build": build, "build_number": build_number,
            "subdir": "linux-64"}  # fmt: skip


RECORDS = {
    "python-3.9": record("python", "3.9.18"),
    "python-3.11": record("python", "3.11.6", "h1_cpython"),
    "python-3.12": record("python", "3.12.0", "h2_cpython"),
    "libfoo": record("libfoo", "1.0"),
    "libbar": record("libbar", "2.0"),
    "numpy-1.9": record("numpy", "1.9"),
    "numpy-1.10": record("numpy", "1.10"),
    "numpy-1.2": record("numpy", "1.2"),
    "scipy": record("scipy", "1.11"),
    "pyyaml": record("pyyaml", "6.0"),
}


@pytest.mark.parametrize(
    ("include", "exclude", "keep", "expected"),
    [
        ([], [], None, set(RECORDS)),
        (["numpy"], [], None, {"numpy-1.9", "numpy-1.10", "numpy-1.2"}),
        (["lib*"], ["libbar"], None, {"libfoo"}),
        (["python >=3.10"], [], None, {"python-3.11", "python-3.12"}),
        (["python * *_cpython"], [], None, {"python-3.11", "python-3.12"}),
        (["^py.*$"], ["pyyaml"], None, {"python-3.9", "python-3.11", "python-3.12"}),
        (["numpy"], ["numpy 1.9"], None, {"numpy-1.10", "numpy-1.2"}),
        ([], ["python <3.12", "lib*", "numpy", "scipy", "pyyaml"], None, {"python-3.12"}),
        # Conda orders versions: 1.10 is newer than 1.9 (not as text).
        (["numpy"], [], 2, {"numpy-1.10", "numpy-1.9"}),
        (["python"], [], 1, {"python-3.12"}),
    ],
)
def test_a_selection_keeps_what_its_entries_say(include, exclude, keep, expected):
    selection = Selection(include, exclude, keep)
    chosen = {key: value for key, value in RECORDS.items() if selection.wants(value)}
    assert set(selection.newest(chosen)) == expected


def test_keep_versions_keeps_every_build_of_a_kept_version():
    builds = {f"b{n}": record("tool", "2.0", f"h{n}_0", n) for n in range(3)}
    builds["old"] = record("tool", "1.0")
    assert set(Selection(keep_versions=1).newest(builds)) == {"b0", "b1", "b2"}
