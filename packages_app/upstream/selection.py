"""Which of an upstream's records a mirror channel copies.

A mirror's ``include`` and ``exclude`` entries are match specs as conda reads them, whose
name may be a glob: ``numpy``, ``lib*``, ``python >=3.10``, ``openssl 3.*``,
``pytorch * *cuda*``. A record is copied when it matches an ``include`` entry (or there
are none) and no ``exclude`` entry; then, with ``keep_versions`` N, only the records of
the newest N versions of each name (in a subdir) stay. Versions are ordered as conda
orders them (py-rattler's ``Version``).

Names are compared first, with one regular expression per entry; only a record whose
name matches an entry with constraints on version or build is compared in full
(py-rattler's ``MatchSpec.matches``), so a filter that keeps a tenth of conda-forge costs
the full comparison on a tenth of its records, not on all of them.
"""

import fnmatch
import re

from rattler import MatchSpec, PackageRecord, Version
from rattler.package.build_string import BuildString


class Entry:
    """One include or exclude entry (validated before it is stored: channels_app.sources)."""

    def __init__(self, text):
        self.spec = MatchSpec(text, exact_names_only=False)
        name = self.spec.name.normalized
        if name.startswith("^") and name.endswith("$"):
            self.name = re.compile(name)
        else:
            self.name = re.compile(fnmatch.translate(name))
        # Anything more than a name (version, build, brackets) needs the full comparison.
        self.name_only = str(self.spec) == name

    def matches(self, name, record):
        if not self.name.match(name):
            return False
        if self.name_only:
            return True
        try:
            return self.spec.matches(_package_record(record))
        except Exception:  # noqa: BLE001 - a record rattler cannot read matches no spec
            return False


def _package_record(record):
    return PackageRecord(
        record["name"],
        str(record.get("version", "0")),
        BuildString(str(record.get("build") or "0")),  # rattler refuses an empty one
        int(record.get("build_number") or 0),
        str(record.get("subdir") or "noarch"),
    )


class Selection:
    """What a mirror copies: ``wants(record)`` for each record, then :meth:`newest`."""

    def __init__(self, include=(), exclude=(), keep_versions=None):
        self.include = [Entry(text) for text in include]
        self.exclude = [Entry(text) for text in exclude]
        self.keep_versions = keep_versions
        # name -> the decision when the name alone decides, else the entries whose name
        # matches (include, exclude): conda-forge has 19 records per name on average.
        self._names = {}

    def wants(self, record):
        name = record["name"]
        known = self._names.get(name)
        if known is None:
            known = self._names[name] = self._for_name(name)
        if isinstance(known, bool):
            return known
        include, exclude = known
        if self.include and not any(e.matches(name, record) for e in include):
            return False
        return not any(e.matches(name, record) for e in exclude)

    def _for_name(self, name):
        include = [e for e in self.include if e.name.match(name)]
        exclude = [e for e in self.exclude if e.name.match(name)]
        if self.include and not include:
            return False
        if any(e.name_only for e in exclude):
            return False
        if all(e.name_only for e in include) and not exclude:
            return True
        return include, exclude

    def newest(self, chosen):
        """``chosen`` ({filename: record}) without the records of versions older than the
        newest ``keep_versions`` of their name."""
        if not self.keep_versions:
            return chosen
        versions = {}  # name -> {version text}
        for record in chosen.values():
            versions.setdefault(record["name"], set()).add(str(record.get("version", "0")))
        kept = {}
        for name, texts in versions.items():
            ordered = sorted(texts, key=_version, reverse=True)
            kept[name] = set(ordered[: self.keep_versions])
        return {
            filename: record
            for filename, record in chosen.items()
            if str(record.get("version", "0")) in kept[record["name"]]
        }


def _version(text):
    try:
        return Version(text)
    except Exception:  # noqa: BLE001 - an unparsable version sorts first (oldest)
        return Version("0")
