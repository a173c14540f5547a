"""The fast path that answers conda file requests before the rest of Django's middleware.

It matches against the route table of packages_app/conda/urls.py itself (whose docstring
lists every route answered before URL resolution), so the fast path and URL resolution
cannot disagree on what a conda file route is or what it is called.
"""

from django.conf import settings

from channels_app.models import RESERVED_NAMES
from packages_app.intake import archives

from .urls import urlpatterns
from .views import CHANNEL_ROOT_FILES


def fast_route(request):
    """``(pattern, view arguments)`` of a conda file request that may take the fast path,
    or None; ``pattern`` is the route's :class:`~django.urls.URLPattern` in the table.

    Only GET and HEAD (a PUT upload is resolved as usual) without a session cookie
    (browsers go the usual way, through the session and authentication middleware), and
    only paths that no route listed before the conda routes can match: those all begin
    with a reserved name, and a channel's web pages (``/<channel>/``,
    ``/<channel>/packages/...``) never with a platform name.
    """
    if request.method not in ("GET", "HEAD"):
        return None
    if settings.SESSION_COOKIE_NAME in request.META.get("HTTP_COOKIE", ""):
        return None
    path = request.path_info[1:]  # as registry/urls.py's include hands it to the table
    for pattern in urlpatterns:
        # fullmatch, as URL resolution matches a route's regex ending in "$". Not
        # pattern.resolve(): its ResolverMatch would cost twice the rest of this function.
        found = pattern.pattern.regex.fullmatch(path)
        if found is not None:
            break
    else:
        return None
    arguments = found.groupdict()  # the routes have no optional groups: no None to drop
    if "token" not in arguments and arguments["channel"] in RESERVED_NAMES:
        return None
    if (
        arguments["path"] not in CHANNEL_ROOT_FILES
        and arguments["path"].partition("/")[0] not in archives.SUBDIRS
    ):
        return None
    return pattern, arguments


class ChannelFileMiddleware:
    """Conda file requests go straight to their view (:func:`.views.channel_file`).

    They skip URL resolution and the session, CSRF, authentication and message
    middleware, which have nothing to do for a token (or anonymous) GET. What the skipped
    middleware would add is added here: the ALLOWED_HOSTS check and Content-Length
    (CommonMiddleware) and X-Frame-Options. Place it right after SecurityMiddleware,
    the control-character check, WhiteNoise and the failed-authentication limit, which
    still run.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        route = fast_route(request)
        if route is None:
            return self.get_response(request)
        request.get_host()  # raises DisallowedHost (400), as in CommonMiddleware
        pattern, arguments = route
        request.route_name = pattern.name  # the request's name in logs and metrics
        response = pattern.callback(request, **arguments)
        if not response.streaming and not response.has_header("Content-Length"):
            response["Content-Length"] = str(len(response.content))
        response.headers.setdefault("X-Frame-Options", settings.X_FRAME_OPTIONS)
        return response
