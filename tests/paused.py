"""Start a Wharf process that stops for a while at one point of its work, so that a test
can kill it exactly there and check what recovers from it.

    python -m tests.paused <point> <seconds> <python arguments>...

as in ``python -m tests.paused publish 600 -m celery -A registry worker ...`` or
``python -m tests.paused import 10 manage.py import_channel ...``. The pause wraps a real
function of Wharf's in this process before the command starts (a Celery worker's pool
processes are forked from it and keep the wrapper), so production code holds no pause
of its own. The points:

- ``publish``: an index rebuild has written its new files and waits before switching to
  them (:func:`packages_app.index.publishing._switch`);
- ``import``: an import batch has stored its files' bytes and waits before committing
  their rows (:func:`packages_app.intake.importing._commit`);
- ``store``: an upload has stored its file's bytes and waits before committing its row
  (:func:`packages_app.intake.uploads.file_change`, as the upload calls it).
"""

import functools
import os
import runpy
import sys
import time

import django


def _pause_before(module, name, seconds):
    # Fails (AttributeError) if the function is gone: the test must not run unpaused.
    real = getattr(module, name)

    @functools.wraps(real)
    def paused(*args, **kwargs):
        time.sleep(seconds)
        return real(*args, **kwargs)

    setattr(module, name, paused)


def _pause(point, seconds):
    if point == "publish":
        from packages_app.index import publishing

        _pause_before(publishing, "_switch", seconds)
    elif point == "import":
        from packages_app.intake import importing

        _pause_before(importing, "_commit", seconds)
    elif point == "store":
        from packages_app.intake import uploads

        _pause_before(uploads, "file_change", seconds)
    else:
        raise SystemExit(f"Unknown point {point!r}: publish, import or store.")


def main(argv):
    point, seconds, *command = argv
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")
    django.setup()
    _pause(point, float(seconds))
    # Then run the command as `python <command>` would.
    if command[0] == "-m":
        sys.argv = [command[1], *command[2:]]
        runpy.run_module(command[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = command
        runpy.run_path(command[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
