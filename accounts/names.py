"""The one naming rule of channels and organisations.

Channels are reached at ``/<channel>/`` and organisations at ``/orgs/<organisation>/``;
both kinds of name follow one pattern and avoid the first path segments that belong to
the site itself. The rule lives here, in the lowest app, so that ``accounts.models``
(organisations) and ``channels_app.models`` (channels) both take it from one place.
"""

import re

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
# First path segments that belong to the site itself: a channel of that name could never
# be reached at /<channel>/.
RESERVED_NAMES = frozenset(
    {
        "admin",
        "api",
        "accounts",
        "static",
        "media",
        "t",
        "channels",
        "search",
        "login",
        "logout",
        "signup",
        "settings",
        "health",
        "healthz",
        "readyz",
        "metrics",
        "docs",
        "about",
        "help",
        "favicon.ico",
        "robots.txt",
        "user",
        "users",
        "orgs",
        "packages",
        "upload",
    }
)
