"""A real browser for the web pages: Debian's chromium driven by Playwright.

`make test` installs chromium with apt when /usr/bin/chromium is missing; Playwright's own
browser download is not used.
"""

import base64
import concurrent.futures
import contextlib
import os
from pathlib import Path

from django.conf import settings
from django.db import connections
from django.test import Client
from playwright.sync_api import expect, sync_playwright

CHROMIUM = os.environ.get("WHARF_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags chromium keeps calling Google's services,
# which on a closed network only slows every page down.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

expect.set_options(timeout=15_000)


@contextlib.contextmanager
def browser_context(base_url, viewport=DESKTOP):
    """A fresh browser profile (no cookies) whose relative URLs go to ``base_url``.

    While it is open Playwright runs an asyncio loop in this thread: Django then refuses
    database access (SynchronousOnlyOperation) and ``asyncio.run`` fails, so callers set
    DJANGO_ALLOW_ASYNC_UNSAFE (the loop never runs Django code) and use
    :func:`outside_the_event_loop` for async clients.
    """
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(base_url=base_url, viewport=viewport)
            context.set_default_timeout(15_000)
            yield context
        finally:
            browser.close()
            # Database work done while the loop ran used a connection of the loop's own
            # context; closed here, or the test database cannot be dropped at the end.
            connections.close_all()


def sign_in(context, user, base_url):
    """Give the browser a session of ``user`` without going through the sign-in form."""
    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    context.add_cookies([{"name": name, "value": client.cookies[name].value, "url": base_url}])


def drop_files(page, zone, paths):
    """Drag ``paths`` onto ``zone`` as a person would from a file manager.

    The files' bytes go into a DataTransfer built in the page, then dragenter, dragover and
    drop are dispatched on the zone with it: the page's own drop handler does the rest.
    """
    files = [
        {"name": Path(path).name, "data": base64.b64encode(Path(path).read_bytes()).decode()}
        for path in paths
    ]
    transfer = page.evaluate_handle(
        """(files) => {
            const transfer = new DataTransfer();
            for (const file of files) {
                const bytes = Uint8Array.from(atob(file.data), (c) => c.charCodeAt(0));
                transfer.items.add(
                    new File([bytes], file.name, { type: "application/octet-stream" }));
            }
            return transfer;
        }""",
        files,
    )
    for event in ("dragenter", "dragover", "drop"):
        zone.dispatch_event(event, {"dataTransfer": transfer})


def outside_the_event_loop(function, *args, **kwargs):
    """Run ``function`` in another thread: Playwright's loop occupies this one."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args, **kwargs).result()
