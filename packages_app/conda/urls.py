"""The conda file routes, declared once; and every route answered before URL resolution.

registry/urls.py includes :data:`urlpatterns` after every other route, so a channel's web
pages (``/<channel>/``, ``/<channel>/packages/...``) win over ``/<channel>/<path>``.
:class:`packages_app.conda.routes.ChannelFileMiddleware` matches requests against these
same pattern objects, so a conda route is changed here or nowhere.

Routes answered by middleware, before Django resolves the URL (the complete list):

- ``/<channel>/<path>``, ``/<channel>/label/<label>/<path>``, ``/t/<token>/<channel>/...``
  and ``/t/<token>/<channel>/label/<label>/...`` (the patterns below): token or anonymous
  GET and HEAD without a session cookie, whose path starts with a platform subdir or is
  ``channeldata.json`` or ``notices.json``, are answered by ``ChannelFileMiddleware``
  (packages_app/conda/routes.py), after SecurityMiddleware, the control-character check
  (registry/hygiene.py), WhiteNoise and the failed-authentication limit, past the
  session, CSRF, authentication and message middleware. Every other request for them
  is resolved here as usual: among them ``PUT /<channel>/<subdir>/<filename>`` (and its
  label and ``/t/<token>/`` forms), the Artifactory-style upload (packages_app/conda/put.py),
  which the fast path leaves to URL resolution, as an upload gains nothing from it.
- ``/healthz``, ``/readyz`` and ``/metrics``: answered by ``OperationsMiddleware``
  (registry/operations.py), the first middleware, and by nothing else; they are in no URL
  table. They must answer before the HTTPS redirect and the ALLOWED_HOSTS check (load
  balancers and Prometheus reach each process by its own address, over plain HTTP), before
  the failed-authentication limit, without a session, and without being counted or
  logged as requests: as routes they would pass all of that middleware first.
"""

from django.urls import re_path

from .views import channel_file

# The first segment of a channel's URLs; registry/urls.py puts its web pages under it too.
CHANNEL = r"(?P<channel>[a-z0-9][a-z0-9._-]*)"
LABEL = r"label/(?P<label>[^/]+)/"
# A token in the URL, for clients that send no headers: /t/<token>/<channel>/...
CREDENTIAL = r"t/(?P<token>[A-Za-z0-9-]+)/"

# In this order: /t/<token>/... before /<channel>/..., a label before the channel's path.
urlpatterns = [
    re_path(
        rf"^{CREDENTIAL}{CHANNEL}/{LABEL}(?P<path>.+)$",
        channel_file,
        name="token-label-channel-file",
    ),
    re_path(rf"^{CREDENTIAL}{CHANNEL}/(?P<path>.+)$", channel_file, name="token-channel-file"),
    re_path(rf"^{CHANNEL}/{LABEL}(?P<path>.+)$", channel_file, name="label-channel-file"),
    re_path(rf"^{CHANNEL}/(?P<path>.+)$", channel_file, name="channel-file"),
]
