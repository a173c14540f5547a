"""Labels: which of a channel's package files each of its URLs serves.

A package file carries one or more labels (``main`` unless its upload said otherwise).
The channel's own URL serves the files that carry ``main``; ``/<channel>/label/<label>/``
those that carry ``<label>``, each label with indexes of its own (:mod:`packages_app.index`).
So ``dev`` builds reach only those who ask for ``dev``, and moving a file to ``main``
publishes it to everyone. A label exists in a channel from the moment a file first
carries it; when no file carries it any more its indexes stay, empty.
"""

import re

from django.db.models import Count

from accounts.errors import DomainError
from packages_app.files.changes import file_change
from packages_app.models import MAIN_LABEL, FileLabel, PackageFile, SubdirIndex

# The longest label name; FileLabel.label and SubdirIndex.label hold as many.
NAME_MAX_LENGTH = 100
NAME = re.compile(rf"^[a-z0-9][a-z0-9._-]{{0,{NAME_MAX_LENGTH - 1}}}$")
# Labels one request may name; more is a mistake, not a use.
MAX_LABELS = 20


class LabelError(DomainError):
    """A label name or change refused; the REST API names the field ``labels``."""

    field = "labels"


def clean(name):
    """The label ``name``, or LabelError naming what is wrong with it."""
    if isinstance(name, str) and len(name) > NAME_MAX_LENGTH:
        # Named by its start: the answer need not repeat all of it.
        raise LabelError(
            f"'{name[:40]}…' is not a label name: it has {len(name)} characters, a label "
            f"name at most {NAME_MAX_LENGTH}."
        )
    if not isinstance(name, str) or not NAME.match(name):
        shown = name if isinstance(name, str) else type(name).__name__
        raise LabelError(
            f"'{shown}' is not a label name: use 1 to {NAME_MAX_LENGTH} lowercase letters, "
            "digits, '.', '_' or '-', starting with a letter or digit (e.g. 'dev', 'rc', "
            "'py3.12')."
        )
    return name


def parse(values):
    """Sorted unique labels from ``values``, each a label or comma-separated labels
    (``["dev", "rc"]`` and ``["dev,rc"]`` are the same); LabelError for a bad one."""
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list | tuple):
        raise LabelError('Give labels as a list of names, e.g. ["dev", "rc"].')
    names = set()
    for value in values:
        if isinstance(value, str):  # "dev, rc"; an empty part is no label
            names |= {clean(part.strip()) for part in value.split(",") if part.strip()}
        else:
            names.add(clean(value))
    if len(names) > MAX_LABELS:
        raise LabelError(f"{len(names)} labels given; a file carries at most {MAX_LABELS}.")
    return sorted(names)


def for_upload(values):
    """The labels an upload asks for (``?label=``), or None when it names none."""
    return parse(list(values)) or None


def attach(package_file, labels):
    """Give a new or replaced file ``labels``; call inside its transaction.

    ``labels`` None: ``main`` for a new file, and for a replacement the labels of the file
    it replaces (a forced re-upload of a dev build must not publish it to everyone).
    Returns the labels whose indexes the change touches: the new ones and those it lost.
    """
    before = set(package_file.labels.values_list("label", flat=True))
    after = set(labels) if labels is not None else before or {MAIN_LABEL}
    _replace(package_file, before, after)
    return before | after


def _replace(package_file, before, after):
    """Make the file carry the labels ``after`` instead of ``before``."""
    FileLabel.objects.filter(file=package_file, label__in=before - after).delete()
    FileLabel.objects.bulk_create(
        [FileLabel(file=package_file, label=label) for label in sorted(after - before)]
    )


def attach_each(files, labels):
    """Give each of ``files`` (saved, e.g. by bulk_create) its ``labels`` (one list per
    file, in the same order)."""
    FileLabel.objects.bulk_create(
        [
            FileLabel(file=f, label=label)
            for f, names in zip(files, labels, strict=True)
            for label in names
        ]
    )


def change(package_file, *, add=(), remove=(), labels=None, request=None, within=None):
    """Add and remove labels of a file, or set them (``labels``); return the new labels.

    The indexes of every label the file gained or lost are rebuilt, in the transaction of
    the change. A file keeps at least one label (LabelError otherwise). ``within``: an
    open :class:`~packages_app.files.changes.FileChange` to take part in.
    """
    add, remove = parse(add or []), parse(remove or [])
    if labels is not None:
        labels = parse(labels)
    with file_change(request=request, within=within) as unit:
        locked = unit.lock_file(package_file)
        before = set(FileLabel.objects.filter(file=locked).values_list("label", flat=True))
        after = set(labels) if labels is not None else (before | set(add)) - set(remove)
        if not after:
            raise LabelError(
                f"{package_file.subdir}/{package_file.filename} would carry no label; a "
                "package file keeps at least one. Add another label before removing "
                f"{', '.join(sorted(before))}, or delete the file."
            )
        if len(after) > MAX_LABELS:
            raise LabelError(f"A file carries at most {MAX_LABELS} labels.")
        if after != before:
            _replace(locked, before, after)
            unit.audit(
                "package.labels_changed",
                package_file.channel,
                subdir=package_file.subdir,
                filename=package_file.filename,
                added=sorted(after - before),
                removed=sorted(before - after),
                labels=sorted(after),
            )
            # Labels are not in the catalog; only the indexes of the labels change.
            unit.touch_file(package_file, before ^ after, in_catalog=False)
    package_file.__dict__.pop("_prefetched_objects_cache", None)
    return sorted(after)


def move(channel, label, to, *, name="", version="", copy=False, request=None):
    """Give every file of ``channel`` that carries ``label`` — of package ``name`` and of
    ``version`` when given — the label ``to``, and take ``label`` from it unless ``copy``;
    return those files (promoting a release candidate from ``rc`` to ``main`` in one step).

    Every file changes in one transaction, with the rebuilds of both labels' indexes.
    LabelError for bad names, the same label twice, or a file that would carry more than
    :data:`MAX_LABELS`.
    """
    label, to = clean(label), clean(to)
    if label == to:
        raise LabelError(f"The files already carry '{label}'; name another label to move them to.")
    with file_change(request=request) as unit:
        found = PackageFile.objects.filter(channel=channel, labels__label=label)
        if name:
            found = found.filter(name=name)
        if version:
            found = found.filter(version=version)
        files = unit.lock_files(found)
        if not files:
            return []
        FileLabel.objects.bulk_create(
            [FileLabel(file=f, label=to) for f in files], ignore_conflicts=True
        )
        if not copy:
            FileLabel.objects.filter(file__in=files, label=label).delete()
        crowded = (
            FileLabel.objects.filter(file__in=files)
            .values("file")
            .annotate(n=Count("id"))
            .filter(n__gt=MAX_LABELS)
        )
        if crowded.exists():
            raise LabelError(f"A file would carry more than {MAX_LABELS} labels.")
        unit.audit(
            "package.labels_moved",
            channel,
            label=label,
            to=to,
            copy=copy,
            package=name,
            version=version,
            files=[f"{f.subdir}/{f.filename}" for f in files],
        )
        for f in files:
            unit.touch(channel, f.subdir, [f.name], {label, to}, in_catalog=False)
    return files


def of_channel(channel):
    """``[{"name": label, "files": count}]``: every label of the channel, ``main`` first.

    A label keeps being listed (with 0 files) once no file carries it: its indexes are
    still served, empty.
    """
    counts = dict(
        FileLabel.objects.filter(file__channel=channel)
        .values_list("label")
        .annotate(files=Count("id"))
        .order_by()
    )
    for label in SubdirIndex.objects.filter(channel=channel).values_list("label", flat=True):
        counts.setdefault(label, 0)
    counts.setdefault(MAIN_LABEL, 0)
    ordered = sorted(counts, key=lambda label: (label != MAIN_LABEL, label))
    return [{"name": label, "files": counts[label]} for label in ordered]
