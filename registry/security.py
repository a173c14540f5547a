"""Content-Security-Policy for every answer, and the production settings' own checks.

Django has no CSP of its own before 6.0, and Wharf's pages need only one policy: scripts,
styles, fonts and frames from Wharf itself, nothing inline. A view that needs more says
so with :func:`with_policy`, for its own answers only.
"""

import functools

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

KEY_ADVICE = (
    "set SECRET_KEY to at least 50 random characters, e.g. the output of "
    "`python -c 'import secrets; print(secrets.token_urlsafe(64))'`"
)


def check_secret_key(key):
    """Refuse a SECRET_KEY that production must not run with (as ``check --deploy`` would)."""
    if not key:
        raise ImproperlyConfigured(
            f"WHARF_PRODUCTION is on but SECRET_KEY is not set: {KEY_ADVICE}."
        )
    if len(key) < 50 or len(set(key)) < 5 or key.startswith("django-insecure-"):
        raise ImproperlyConfigured(
            f"WHARF_PRODUCTION is on but SECRET_KEY is too weak: {KEY_ADVICE}."
        )


# Scripts, styles and fonts from Wharf only, none inline; images may be data: URLs (the
# admin's and Swagger UI's icons); no plugins, no framing, no <base> elsewhere.
DIRECTIVES = {
    "default_src": "'self'",
    "script_src": "'self'",
    "style_src": "'self'",
    "img_src": "'self' data:",
    "object_src": "'none'",
    "base_uri": "'self'",
    "frame_ancestors": "'none'",
}


def policy(**changes):
    """A CSP header value: :data:`DIRECTIVES` with ``changes`` (``style_src=...`` for
    ``style-src``)."""
    directives = {**DIRECTIVES, **changes}
    return "; ".join(f"{name.replace('_', '-')} {value}" for name, value in directives.items())


class ContentSecurityPolicyMiddleware:
    """Add ``WHARF_CONTENT_SECURITY_POLICY`` to every answer that has no policy yet."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if settings.WHARF_CONTENT_SECURITY_POLICY:
            response.headers.setdefault(
                "Content-Security-Policy", settings.WHARF_CONTENT_SECURITY_POLICY
            )
        return response


def with_policy(view, header_value):
    """``view`` answering with its own Content-Security-Policy."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response["Content-Security-Policy"] = header_value
        return response

    return wrapped
