"""Posting a web form as a browser does, and reading what the page that refused it shows.

The clients made here check CSRF tokens as Django does in production, so a test that
posts through :func:`submit` also shows that the form carries its token.
"""

import re

from django.test import Client
from django.utils.html import escape

CSRF_TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def browser(user):
    """A client signed in as ``user`` that refuses posts without the page's CSRF token."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def submit(client, url, data, page=None):
    """Post ``data`` to ``url`` with the CSRF token of the page that shows the form:
    ``page`` (a response), by default ``url`` itself, fetched first as a browser would."""
    page = page if page is not None else client.get(url)
    token = CSRF_TOKEN.search(page.content.decode())
    assert token, f"the page of {url} carries no CSRF token"
    return client.post(url, {**data, "csrfmiddlewaretoken": token.group(1)})


def shown_errors(response, field, form="form"):
    """The errors of ``field`` on the form a page shows again; each must be on the page."""
    errors = list(response.context[form].errors.get(field, []))
    page = response.content.decode()
    for error in errors:
        assert escape(error) in page, error
    return errors


def too_long(limit):
    """The message of a Django form field refusing a value one character over ``limit``."""
    return f"Ensure this value has at most {limit} characters (it has {limit + 1})."


def too_long_for_the_api(limit):
    """The message of a DRF field refusing a value over ``limit``."""
    return f"Ensure this field has no more than {limit} characters."
