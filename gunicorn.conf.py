# gunicorn reads this file from the working directory (or from --config): Wharf's logger,
# with token secrets masked, and the metrics folder its workers share (registry/gunicorn.py).
from registry.gunicorn import WharfLogger, child_exit, on_exit, on_starting  # noqa: F401

logger_class = WharfLogger
