"""The conda file routes, and the fast path that answers them before Django's middleware."""

import re

from django.conf import settings

from channels_app.models import RESERVED_NAMES
from packages_app.intake import archives

from .views import channel_file

# The conda file routes of registry/urls.py, as they match a path without its "/".
_CHANNEL = r"(?P<channel>[a-z0-9][a-z0-9._-]*)"
_LABEL = r"label/(?P<label>[^/]+)/"
_TOKEN_LABEL_ROUTE = re.compile(rf"^t/(?P<token>[A-Za-z0-9-]+)/{_CHANNEL}/{_LABEL}(?P<path>.+)$")
_TOKEN_ROUTE = re.compile(rf"^t/(?P<token>[A-Za-z0-9-]+)/{_CHANNEL}/(?P<path>.+)$")
_LABEL_ROUTE = re.compile(rf"^{_CHANNEL}/{_LABEL}(?P<path>.+)$")
_CHANNEL_ROUTE = re.compile(rf"^{_CHANNEL}/(?P<path>.+)$")


def fast_route(request):
    """The view arguments of a conda file request that may take the fast path, or None.

    Only GET and HEAD without a session cookie (browsers go the usual way, through the
    session and authentication middleware), and only paths that no route listed before
    the channel routes can match: those all begin with a reserved name, and a channel's
    web pages (``/<channel>/``, ``/<channel>/packages/...``) never with a platform name.
    """
    if request.method not in ("GET", "HEAD"):
        return None
    if settings.SESSION_COOKIE_NAME in request.META.get("HTTP_COOKIE", ""):
        return None
    path = request.path_info[1:]
    match = _TOKEN_LABEL_ROUTE.match(path) or _TOKEN_ROUTE.match(path)
    if match is None:
        match = _LABEL_ROUTE.match(path) or _CHANNEL_ROUTE.match(path)
        if match is None or match["channel"] in RESERVED_NAMES:
            return None
    if (
        match["path"] != "channeldata.json"
        and match["path"].partition("/")[0] not in archives.SUBDIRS
    ):
        return None
    return match.groupdict()


class ChannelFileMiddleware:
    """Conda file requests go straight to :func:`channel_file`.

    They skip URL resolution and the session, CSRF, authentication and message
    middleware, which have nothing to do for a token (or anonymous) GET. What the skipped
    middleware would add is added here: the ALLOWED_HOSTS check and Content-Length
    (CommonMiddleware) and X-Frame-Options. Place it right after SecurityMiddleware and
    WhiteNoise, which still run.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        arguments = fast_route(request)
        if arguments is None:
            return self.get_response(request)
        request.get_host()  # raises DisallowedHost (400), as in CommonMiddleware
        route = "label-channel-file" if "label" in arguments else "channel-file"
        request.route_name = f"token-{route}" if "token" in arguments else route
        response = channel_file(request, **arguments)
        if not response.streaming and not response.has_header("Content-Length"):
            response["Content-Length"] = str(len(response.content))
        response.headers.setdefault("X-Frame-Options", settings.X_FRAME_OPTIONS)
        return response
