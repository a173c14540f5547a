"""Requests carrying control characters are refused (400) before anything reads them.

PostgreSQL cannot store NUL in text, so a ``%00`` in a channel name, a file name or a
search query that reached a query answered 500. The other C0 characters and DEL have no
place in a URL path, a query string or a header value either — conda, rattler, curl and
browsers never send them — and a newline in a logged path forged a second log line. One
check at the door, for every route, instead of one in each view.

:class:`InputHygieneMiddleware` runs on every conda file request too, so it does a few
precompiled searches and parses nothing. It checks form bodies
(``application/x-www-form-urlencoded``) of web pages; under ``/api/`` the REST parsers
(:mod:`registry.parsers`) check what they parse instead, because a package may come as a
raw body labelled with that very type (``curl --data-binary`` does) and must be neither
read nor refused here.
"""

import re

from django.conf import settings
from django.http import HttpResponseBadRequest, JsonResponse

from . import errors

# C0 and DEL, in a decoded path.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The same, raw or percent-encoded: the query string is checked before anything decodes
# it. A tab or a newline is no more legitimate in a query than in a path.
_CONTROL_IN_QUERY = re.compile(r"[\x00-\x1f\x7f]|%(?:[01][0-9a-f]|7f)", re.IGNORECASE)
# A header value may hold a tab (RFC 9110, 5.5: whitespace inside a field value).
_CONTROL_IN_HEADER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Text a person types may hold tab, newline and carriage return (a textarea sends CR LF).
CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_IN_FORM = re.compile(
    rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|%(?:0[0-8bcef]|1[0-9a-f]|7f)", re.IGNORECASE
)
FORM = "application/x-www-form-urlencoded"


class InputHygieneMiddleware:
    """Refuse a request whose path, query string, header values or web form body hold a
    control character. Place it after OperationsMiddleware (refusals are counted and
    logged), SecurityMiddleware and the CSP (refusals carry their headers), and before
    WhiteNoise and the conda file fast path."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        problem = _problem(request)
        if problem is not None:
            return refusal(request, problem)
        return self.get_response(request)


def _problem(request):
    """What part of the request holds a control character, as a message; or None."""
    if _CONTROL.search(request.path_info):
        return _anywhere("The URL path")
    meta = request.META
    if _CONTROL_IN_QUERY.search(meta.get("QUERY_STRING", "")):
        return _anywhere("The query string")
    for key, value in meta.items():
        if key.startswith("HTTP_") and _CONTROL_IN_HEADER.search(value):
            return _anywhere(f"The {key[5:].replace('_', '-').title()} header")
    if (
        request.method == "POST"
        and request.content_type == FORM
        and not request.path_info.startswith("/api/")
        and _form_body_has_control(request)
    ):
        return (
            "A form field contains a control character (such as %00); only tab, newline "
            "and carriage return are allowed in text. Remove it and try again."
        )
    return None


def _anywhere(part):
    return (
        f"{part} contains a control character (such as NUL, %00, or a newline, %0A); "
        "remove it and try again."
    )


def _form_body_has_control(request):
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if not length or (limit is not None and length > limit):
        return False  # Django refuses it (RequestDataTooBig) if the view reads the form
    # Read once: request.POST is parsed from these same bytes later.
    return _CONTROL_IN_FORM.search(request.body) is not None


def refusal(request, message):
    if errors.wants_json(request):
        return JsonResponse({"detail": message}, status=400)
    return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
