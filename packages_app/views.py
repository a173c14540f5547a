"""Web pages about packages: the home page's recent packages, search, a channel's
packages and statistics, a package's page, deleting, yanking and labelling a file."""

from django.contrib import messages
from django.core.paginator import InvalidPage, Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.authentication import Caller
from accounts.errors import DomainError
from channels_app import install, related
from channels_app.access import Action, allowed_actions, page_channel, readable_channels
from channels_app.models import Kind
from channels_app.views import channel_context
from packages_app.conda import statistics
from packages_app.discovery import catalog, dependencies, install_channels, pages
from packages_app.files import deleting, labels, yanking
from packages_app.intake import archives
from packages_app.models import MirrorRun, Package, PackageFile
from packages_app.upstream import mirror

MIRROR_RUNS_SHOWN = 10
RESULTS_PER_PAGE = 25
RECENT_PACKAGES = 12
PACKAGES_PER_PAGE = 50


def home(request):
    caller = Caller(request.user)
    recent = (
        Package.objects.filter(channel__in=readable_channels(caller))
        .select_related("channel")
        .order_by("-updated_at")[:RECENT_PACKAGES]
    )
    return render(request, "home.html", {"recent": recent})


def search(request):
    query = request.GET.get("q", "").strip()
    channel_name = request.GET.get("channel", "")
    platform = request.GET.get("platform", "")
    platform = platform if platform in archives.SUBDIRS else ""
    context = {
        "query": query,
        "channel_name": channel_name,
        "platform": platform,
        "platforms": sorted(archives.SUBDIRS),
    }
    if query:
        readable = readable_channels(Caller(request.user))
        searched = readable.filter(name=channel_name) if channel_name else readable
        results = pages.search(searched, query, platform)
        paginator = catalog.RankedPaginator(results, RESULTS_PER_PAGE)
        try:
            context["page"] = paginator.page(request.GET.get("page") or 1)
        except InvalidPage:
            raise Http404("There is no such page of results.") from None
        context["channel_names"] = pages.channels_with_matches(readable, query)
    return render(request, "packages/search.html", context)


def channel_page(request, channel):
    """A channel's page: its packages (filtered by name), how to install from it and how
    to upload to it."""
    channel = page_channel(request, channel)
    context = channel_context(request, channel, "packages")
    caller = Caller(request.user)
    visible_related = related.visible(channel, caller)
    packages = Package.objects.filter(channel=channel).order_by("name")
    query = request.GET.get("q", "").strip()
    if query:
        packages = packages.filter(name__icontains=query)
    context.update(
        page=Paginator(packages, PACKAGES_PER_PAGE).get_page(request.GET.get("page")),
        query=query,
        related=visible_related,
        snippets=install.snippets(request, channel, visible_related),
        upload_snippet=install.upload_snippet(request, channel),
    )
    if channel.kind == Kind.MIRROR:
        runs = MirrorRun.objects.filter(channel=channel).select_related("started_by")
        context["mirror_runs"] = runs[:MIRROR_RUNS_SHOWN]
    return render(request, "channels/page.html", context)


@require_POST
def mirror_run_now(request, channel):
    """Start a run of a mirror channel now (its owners)."""
    channel = page_channel(request, channel, Action.MANAGE)
    if channel.kind != Kind.MIRROR:
        raise Http404(f"Channel '{channel.name}' is not a mirror channel.")
    try:
        mirror.start(channel, request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "A mirror run was started; reload the page to follow it.")
    return redirect("channel", channel.name)


def channel_statistics(request, channel):
    """Downloads, top packages, storage and files of the channel, for its owners."""
    channel = page_channel(request, channel, Action.MANAGE)
    context = channel_context(request, channel, "statistics")
    context["statistics"] = statistics.for_page(statistics.channel_statistics(channel))
    return render(request, "channels/statistics.html", context)


def package_page(request, channel, package_name):
    channel = page_channel(request, channel)
    package = Package.objects.filter(channel=channel, name=package_name).first()
    files = list(
        PackageFile.objects.filter(channel=channel, name=package_name)
        .select_related("uploader")
        .prefetch_related("labels")
    )
    if package is None or not files:
        raise Http404(f"No package '{package_name}' in channel '{channel.name}'.")
    caller = Caller(request.user)
    latest = pages.latest_file(files, package.latest_version) or pages.newest_first(files)[0]
    requirements = dependencies.resolve(channel, latest.record, caller)
    context = {
        "channel": channel,
        "package": package,
        "latest": latest,
        "description": pages.render_markdown(latest.description),
        "links": pages.project_links(latest),
        "matrix": pages.version_matrix(files),
        "files": pages.newest_first(files),
        "dependencies": requirements,
        "may_delete": Action.DELETE_PACKAGE in allowed_actions(caller, channel),
        "solved": install_channels.page_context(request, channel, package.name, caller),
        "may_yank": Action.YANK_PACKAGE in allowed_actions(caller, channel),
        "reason_max_length": yanking.REASON_MAX_LENGTH,
        "may_label": Action.LABEL_PACKAGE in allowed_actions(caller, channel),
        "statistics": statistics.for_page(statistics.package_statistics(channel, package.name)),
    }
    return render(request, "packages/package.html", context)


@require_POST
def delete_file(request, channel, package_name, subdir, filename):
    channel = page_channel(request, channel, Action.DELETE_PACKAGE)
    package_file = get_object_or_404(
        PackageFile, channel=channel, name=package_name, subdir=subdir, filename=filename
    )
    deleting.delete_package_file(package_file, request=request)
    messages.success(request, f"Deleted {subdir}/{filename}; the index is being rebuilt.")
    if PackageFile.objects.filter(channel=channel, name=package_name).exists():
        return redirect("package", channel=channel.name, package_name=package_name)
    return redirect("channel", channel=channel.name)


@require_POST
def yank_file(request, channel, package_name, subdir, filename):
    channel = page_channel(request, channel, Action.YANK_PACKAGE)
    package_file = get_object_or_404(
        PackageFile, channel=channel, name=package_name, subdir=subdir, filename=filename
    )
    unyank = bool(request.POST.get("unyank"))
    try:
        if unyank:
            yanking.unyank(package_file, request=request)
        else:
            yanking.yank(package_file, request.POST.get("reason"), request=request)
    except DomainError as exc:
        undone = "un-yanked" if unyank else "yanked"
        messages.error(request, f"{subdir}/{filename} was not {undone}: {exc.message}")
        return _refused(request, channel, package_name, exc)
    done = "Un-yanked" if unyank else "Yanked"
    messages.success(request, f"{done} {subdir}/{filename}; the index is being rebuilt.")
    return redirect("package", channel=channel.name, package_name=package_name)


@require_POST
def label_file(request, channel, package_name, subdir, filename):
    channel = page_channel(request, channel, Action.LABEL_PACKAGE)
    package_file = get_object_or_404(
        PackageFile, channel=channel, name=package_name, subdir=subdir, filename=filename
    )
    try:
        new = labels.change(package_file, labels=request.POST.get("labels", ""), request=request)
    except DomainError as exc:
        messages.error(request, f"The labels of {subdir}/{filename} stay: {exc.message}")
        return _refused(request, channel, package_name, exc)
    messages.success(
        request, f"{subdir}/{filename} now carries {', '.join(new)}; the indexes are being "
        "rebuilt."
    )  # fmt: skip
    return redirect("package", channel=channel.name, package_name=package_name)


def _refused(request, channel, package_name, exc):
    """The package page again, showing the refusal just added to the messages, with the
    refusal's status (as the REST API answers it) instead of a redirect to a 200."""
    response = package_page(request, channel.name, package_name)
    response.status_code = exc.status
    return response
