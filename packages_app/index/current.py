"""current_repodata.json: each package name's newest version, and what those need.

conda's classic solver reads this small file first and falls back to repodata.json when
it cannot solve with it. It holds, as conda-index writes it:

- for every package name, the files of its newest version (every build of it); when
  one of those has ``track_features``, also the newest file of the name without any
  (conda-index keeps one, so that a solve is not forced onto a feature);
- for every dependency of a file it holds that no kept file of the dependency's name
  satisfies, the files of the newest version of that name that do, and so on for their
  dependencies, until nothing more is needed;
- a ``.tar.bz2`` only when no ``.conda`` of the same stem is there (conda prefers the
  ``.conda``; conda-index then writes the ``.tar.bz2``'s md5 on it as
  ``legacy_bz2_md5``);
- ``removed`` as repodata.json has it (the yanked files), and its ``info``.

Where this differs from conda-index, on purpose: it adds the files for unmet dependencies
in one round, not until closed, so a solve could still miss what an added file needs; it
adds every build of that version, where only those that match the dependency are added
here; and it writes ``legacy_bz2_md5: null`` on a ``.conda`` without a ``.tar.bz2``,
which is left out here (it says nothing).

What one name contributes (:class:`Newest`) depends on that name's files alone, so it is
kept with the record set (``RecordSet.newest``) and recomputed only when the name
changes; the closure over dependencies is then look-ups in what is kept.
"""

import functools

import orjson
import rattler

from .repodata import CONDA_KEY, TAR_BZ2_KEY, document, record_key

CONDA = ".conda"
TAR_BZ2 = ".tar.bz2"


def current_repodata_json(records):
    """current_repodata.json of a :class:`~.repodata.RecordSet`, as bytes."""
    selected, _ = select(records)
    members = {}
    for key in (TAR_BZ2_KEY, CONDA_KEY):
        everything = records.sorted[key]
        if len(selected) * 8 < len(everything):  # sorting the few beats filtering them all
            chosen = sorted(f for f in selected if record_key(f) == key)
        else:
            chosen = [f for f in everything if f in selected]
        members[key] = b",".join([_fragment(records, f) for f in chosen])
    return document(records.subdir, members[TAR_BZ2_KEY], members[CONDA_KEY], records.removed)


def select(records):
    """The filenames current_repodata.json holds, and each name's :class:`Newest`."""
    newest = {}
    selected = set()
    wanted = set()
    for name in records.names:
        summary = records.newest.get(name)
        if summary is None:
            summary = records.newest[name] = Newest(records, name)
        if summary.kept:
            newest[name] = summary
            selected.update(summary.kept)
            wanted.update(summary.kept_depends)
    # Every dependency spec is looked at once: whether it is satisfied depends only on
    # the kept files of its name, never on what was added, so the order does not matter.
    seen = set()
    pending = list(wanted)
    while pending:
        text = pending.pop()
        if text in seen:
            continue
        seen.add(text)
        parsed = _spec(text)
        if parsed is None:
            continue
        name, spec = parsed
        summary = newest.get(name)
        if summary is None or summary.satisfies(text, spec):
            continue  # not in this subdir (another subdir or channel provides it), or kept
        for filename in summary.newest_matching(records, text, spec):
            if filename not in selected:
                selected.add(filename)
                pending.extend(summary.depends[filename])
    return selected, newest


@functools.lru_cache(maxsize=65536)
def _spec(text):
    """``(package name, Requirement)`` of a dependency, None for one rattler cannot read."""
    try:
        spec = rattler.MatchSpec(text)
    except Exception:  # noqa: BLE001 - such a dependency can be satisfied by nothing
        return None
    if spec.name is None:
        return None
    return spec.name.normalized, Requirement(spec)


class Requirement:
    """A dependency spec matched against records. Most name a version range at most:
    those are matched on the parsed version alone, without building a PackageRecord for
    rattler (which costs more than the match)."""

    def __init__(self, spec):
        self.spec = spec
        name = spec.name.normalized
        canonical = spec.to_canonical_string()
        self.any = canonical == name
        self.version = None
        if not self.any and canonical == f'{name}[version="{spec.version}"]':
            self.version = rattler.VersionSpec(spec.version)

    def matches(self, record, version):
        """Whether the record dict ``record`` of (parsed) ``version`` matches."""
        if self.any:
            return True
        if self.version is not None:
            return self.version.matches(version)
        return self.spec.matches(_package_record(record))


class Newest:
    """What one package name brings to current_repodata.json, from its files alone."""

    def __init__(self, records, name):
        self.name = name
        files = _preferred(f for f in records.names.get(name, ()) if f in records.fragments)
        self.kept = ()
        self.kept_depends = frozenset()
        self.depends = {}  # filename -> its dependencies, for files kept or added
        self._records = {}  # filename -> the record's fields a spec matches, same files
        self._matches = {}  # dependency spec -> whether a kept file satisfies it
        self._newest_matching = {}  # dependency spec -> the files added for it
        self._ordered = None  # every file of the name, newest first, once needed
        if not files:
            return
        versions = {filename: _version_text(name, filename) for filename in files}
        top = max({_parse_version(text) for text in versions.values()})
        kept = sorted(f for f in files if _parse_version(versions[f]) == top)
        loaded = {filename: records.record(filename) for filename in kept}
        for filename, record in loaded.items():
            self._remember(filename, record)
        if any(record.get("track_features") for record in loaded.values()):
            for filename, record in self._all_newest_first(records):
                if not record.get("track_features"):
                    if filename not in self._records:
                        self._remember(filename, record)
                        kept.append(filename)
                    break
        self.kept = tuple(kept)
        self.kept_depends = frozenset(d for f in kept for d in self.depends[f])

    def _remember(self, filename, record):
        self._records[filename] = _matched_fields(record)
        self.depends[filename] = tuple(record.get("depends") or ())

    def satisfies(self, text, spec):
        """Whether a kept file matches the dependency ``spec`` (a :class:`Requirement`)."""
        found = self._matches.get(text)
        if found is None:
            found = self._matches[text] = any(
                spec.matches(self._records[f], _parsed(self._records[f])) for f in self.kept
            )
        return found

    def newest_matching(self, records, text, spec):
        """The files of the newest version of this name that match ``spec``."""
        found = self._newest_matching.get(text)
        if found is None:
            found, version = [], None
            for filename, record in self._all_newest_first(records):
                if version is not None and _parsed(record) != version:
                    break
                if spec.matches(record, _parsed(record)):
                    version = _parsed(record)
                    found.append(filename)
                    if filename not in self._records:
                        self._remember(filename, record)
            found = self._newest_matching[text] = tuple(found)
        return found

    def _all_newest_first(self, records):
        if self._ordered is None:
            files = _preferred(
                f for f in records.names.get(self.name, ()) if f in records.fragments
            )
            loaded = [(f, records.record(f)) for f in files]
            loaded.sort(key=lambda item: (item[0],))  # a stable order among equals
            loaded.sort(key=lambda item: _order(item[1]), reverse=True)
            # Kept while the name is unchanged: only what matching and adding need.
            self._ordered = [(f, _kept_fields(record)) for f, record in loaded]
        return self._ordered


def _fragment(records, filename):
    """The ``"<filename>":<record>`` of a selected file; a ``.conda`` whose ``.tar.bz2``
    is in the subdir too carries that file's md5 as ``legacy_bz2_md5``."""
    twin = filename[: -len(CONDA)] + TAR_BZ2 if filename.endswith(CONDA) else None
    if twin is None or twin not in records.fragments:
        return records.fragments[filename]
    record = records.record(filename)
    record["legacy_bz2_md5"] = records.record(twin).get("md5")
    return orjson.dumps(filename) + b":" + orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def _preferred(filenames):
    """The files conda considers: a ``.tar.bz2`` with a ``.conda`` of the same stem is
    left out."""
    filenames = set(filenames)
    return [
        f
        for f in filenames
        if not (f.endswith(TAR_BZ2) and f[: -len(TAR_BZ2)] + CONDA in filenames)
    ]


def _version_text(name, filename):
    """The version in a file name (``<name>-<version>-<build><ext>``; uploads check that
    it agrees with index.json), read without reading the record."""
    stem = filename[: -len(CONDA)] if filename.endswith(CONDA) else filename[: -len(TAR_BZ2)]
    return stem[len(name) + 1 :].rpartition("-")[0]


def _parsed(record):
    return _parse_version(record["version"])


@functools.lru_cache(maxsize=65536)
def _parse_version(text):
    try:
        return rattler.Version(text)
    except Exception:  # noqa: BLE001 - uploads refuse these; sort one below any other
        return rattler.Version("0a0")


# What a dependency spec can be matched on, and what deciding what to add reads.
_MATCHED = ("name", "version", "build", "build_number", "subdir")
_KEPT = (*_MATCHED, "depends", "track_features")


def _matched_fields(record):
    return {key: record[key] for key in _MATCHED if key in record}


def _kept_fields(record):
    return {key: record[key] for key in _KEPT if key in record}


def _order(record):
    return _parsed(record), record.get("build_number", 0), record.get("timestamp", 0)


def _package_record(record):
    """The fields of a record a dependency spec can name, for ``MatchSpec.matches``."""
    return rattler.PackageRecord(
        record["name"],
        record["version"],
        rattler.BuildString(record.get("build", "")),
        record.get("build_number", 0),
        record.get("subdir", "noarch"),
    )
