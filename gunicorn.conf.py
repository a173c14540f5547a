# gunicorn reads this file from the working directory (or from --config): Wharf's logger,
# with token secrets masked, the metrics folder its workers share, and each worker's start
# (registry/gunicorn.py).
from registry.gunicorn import (  # noqa: F401
    WharfLogger,
    child_exit,
    on_exit,
    on_starting,
    post_worker_init,
)

logger_class = WharfLogger
