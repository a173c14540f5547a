"""What the package web pages show, computed outside the templates.

Package metadata comes from uploaded archives and is untrusted: descriptions are rendered
as Markdown without raw HTML, and only http(s) URLs become links.
"""

from dataclasses import dataclass
from urllib.parse import urlsplit

import rattler
from django.db.models import Exists, OuterRef
from django.utils.safestring import mark_safe
from markdown_it import MarkdownIt

from packages_app.discovery import catalog
from packages_app.models import PackageFile

# CommonMark with raw HTML escaped; its link validation drops javascript:, vbscript:,
# file: and data: (other than images) links.
_markdown = MarkdownIt("commonmark", {"html": False})


def render_markdown(text):
    return mark_safe(_markdown.render(text or ""))  # noqa: S308 - raw HTML is escaped


def http_url(value):
    """``value`` if it is an absolute http(s) URL, else None."""
    value = (value or "").strip()
    parts = urlsplit(value)
    if parts.scheme.lower() in {"http", "https"} and parts.netloc:
        return value
    return None


def project_links(package_file):
    """(label, URL) of the package's home, documentation and source, when http(s)."""
    links = [
        ("Home", package_file.home),
        ("Documentation", package_file.doc_url),
        ("Source", package_file.dev_url),
    ]
    return [(label, http_url(url)) for label, url in links if http_url(url)]


def newest_first(files):
    """Files by conda version order, newest first; then by subdir and file name."""
    files = sorted(files, key=lambda f: (f.subdir, f.filename))
    return sorted(files, key=lambda f: rattler.Version(f.version), reverse=True)


def latest_file(files, version):
    """Among the files of ``version``, the newest upload (as the catalog chooses)."""
    return max(
        (f for f in files if f.version == version),
        key=lambda f: (f.uploaded_at, f.pk),
        default=None,
    )


@dataclass
class VersionMatrix:
    platforms: list
    rows: list  # (version, [sorted (build string, yanked) of each platform])


def version_matrix(files):
    """Versions (newest first) × platforms, each cell the builds there and if yanked."""
    platforms = sorted({f.subdir for f in files})
    builds = {}
    for f in files:
        builds.setdefault((f.version, f.subdir), []).append((f.build, f.yanked))
    versions = sorted({f.version for f in files}, key=rattler.Version, reverse=True)
    rows = [(v, [sorted(builds.get((v, p), [])) for p in platforms]) for v in versions]
    return VersionMatrix(platforms, rows)


def search(channels, term, platform=""):
    """Ranked catalog rows of ``channels`` matching ``term``, optionally on one platform.

    The platform filter asks the package files rather than the ``platforms`` JSON list:
    JSON containment is not available on SQLite.
    """
    results = catalog.search(channels, term)
    if platform:
        on_platform = PackageFile.objects.filter(
            channel=OuterRef("channel"), name=OuterRef("name"), subdir=platform
        )
        results = results.filter(Exists(on_platform))
    return results


def channels_with_matches(channels, term):
    """The names of ``channels`` that have a package matching ``term``."""
    matching = catalog.search(channels, term).order_by().values("channel_id")
    return list(channels.filter(pk__in=matching).order_by("name").values_list("name", flat=True))
