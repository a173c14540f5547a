"""Progress of a long management command: a bar on a terminal, lines in a log."""

import contextlib
import sys
import time

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm


class Progress:
    """A tqdm bar when stderr is a terminal; otherwise a line on ``stdout`` every
    ``interval`` seconds (and at the end); nothing at verbosity 0."""

    def __init__(self, stdout, total, *, unit, verbosity=1, interval=10):
        self.stdout = stdout
        self.total = total
        self.unit = unit
        self.quiet = verbosity < 1
        self.interval = interval
        self.last_line = time.monotonic()
        self.shown = -1
        self.bar = None
        self.logging = contextlib.nullcontext()
        if not self.quiet and sys.stderr.isatty():
            self.bar = tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True)
            # Log lines printed above the bar instead of through it.
            self.logging = logging_redirect_tqdm()
            self.logging.__enter__()

    def update(self, done, note="", *, total=None):
        """``done`` of the total so far; ``total`` when it became known only now."""
        if total is not None:
            self.total = total
            if self.bar is not None:
                self.bar.total = total
        if self.bar is not None:
            if note:
                self.bar.set_postfix_str(note, refresh=False)
            self.bar.update(done - self.bar.n)
            return
        now = time.monotonic()
        due = now - self.last_line >= self.interval or done == self.total
        if self.quiet or not due or done == self.shown:
            return
        self.last_line, self.shown = now, done
        self.stdout.write(f"{done}/{self.total} {self.unit}s" + (f": {note}" if note else ""))

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.logging.__exit__(None, None, None)
            self.bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
