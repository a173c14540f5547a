"""Web pages about channels."""

from django.shortcuts import render

from accounts.authentication import Caller

from .access import readable_channels


def home(request):
    channels = readable_channels(Caller(request.user)).order_by("name")[:200]
    base_url = request.build_absolute_uri("/").rstrip("/")
    return render(request, "home.html", {"channels": channels, "base_url": base_url})


def channel_list(request):
    pass


def channel_new(request):
    pass


def channel_page(request, channel):
    pass


def channel_upload(request, channel):
    pass


def channel_members(request, channel):
    pass


def channel_settings(request, channel):
    pass


def channel_delete(request, channel):
    pass
