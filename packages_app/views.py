"""Web pages about packages: search, a package's page, deleting a file."""

from django.http import Http404


def search(request):
    raise Http404("Not built yet.")


def package_page(request, channel, package_name):
    raise Http404("Not built yet.")


def delete_file(request, channel, package_name, subdir, filename):
    raise Http404("Not built yet.")
