"""Log lines: plain text for people or one JSON object per line for collectors, on stdout.

``WHARF_LOG_FORMAT`` chooses (``text`` or ``json``); web processes, gunicorn's own
messages and Celery workers all write through :func:`formatter`. Whatever a line carries,
token secrets never leave: every line is passed through :func:`redact` as its last step,
so a token in a URL (``/t/<token>/``), in a message or in a traceback is masked wherever
it came from.

One record is one line, whatever a client put in it: messages carry paths, names and
reasons from requests, and a newline in one would forge a second line; a raw NUL or
escape sequence garbles what reads the log. Text lines show control characters escaped
(``\\n``, ``\\x00``), JSON lines as JSON escapes; a traceback keeps its own line breaks.
"""

import logging
import logging.config
import os
import re

from pythonjsonlogger.orjson import OrjsonFormatter

FORMATS = ("text", "json")
MASK = "***"

# Token secrets (wharf- and 40 characters), any /t/<token>/ URL segment, credentials after
# an authorization scheme, and passwords in URLs such as a DATABASE_URL. Each pattern runs
# only on lines that contain its cue: most lines contain none, and are left at once.
_PATTERNS = [
    ("wharf-", re.compile(r"wharf-[A-Za-z0-9]{16,}"), "wharf-" + MASK),
    ("/t/", re.compile(r"/t/[^/\s\"'?#]+"), "/t/" + MASK),
    ("@", re.compile(r"(://[^/\s:@\"']*:)[^/\s@\"']+@"), r"\1" + MASK + "@"),
]
_SCHEME = re.compile(r"\b(bearer|basic|token)(\s+)[A-Za-z0-9+/=._~-]{16,}", re.IGNORECASE)
_SCHEME_CUES = ("bearer ", "basic ", "token ")

# C0, DEL, C1 (terminals read some as escape sequences) and the two Unicode line
# separators that str.splitlines() also breaks on.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
# What orjson leaves unescaped of those; they can only occur inside JSON strings.
_UNESCAPED_IN_JSON = re.compile(r"[\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match):
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def escape_controls(text, keep_newlines=False):
    """``text`` with control characters shown as escapes: ``\\n``, ``\\x00``, ``\\u2028``."""
    pattern = _CONTROL_BUT_NEWLINE if keep_newlines else _CONTROL
    if pattern.search(text) is None:  # most lines: left at once
        return text
    return pattern.sub(_escape, text)


def redact(text):
    """``text`` with token secrets and other credentials replaced by ``***``."""
    for cue, pattern, replacement in _PATTERNS:
        if cue in text:
            text = pattern.sub(replacement, text)
    lowered = text.lower()
    if any(cue in lowered for cue in _SCHEME_CUES):
        text = _SCHEME.sub(r"\1\2" + MASK, text)
    return text


def log_format(value=None):
    """The configured format (``WHARF_LOG_FORMAT``), checked."""
    value = (value if value is not None else os.environ.get("WHARF_LOG_FORMAT", "")) or "text"
    value = value.strip().lower()
    if value not in FORMATS:
        raise ValueError(f"WHARF_LOG_FORMAT is '{value}'; use 'text' or 'json'.")
    return value


class TextFormatter(logging.Formatter):
    """``time level logger message``; extra fields are for JSON."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record):
        return redact(super().format(record))

    def formatMessage(self, record):
        return escape_controls(super().formatMessage(record))

    def formatException(self, ei):
        return escape_controls(super().formatException(ei), keep_newlines=True)

    def formatStack(self, stack_info):
        return escape_controls(super().formatStack(stack_info), keep_newlines=True)


class JsonFormatter(OrjsonFormatter):
    """``{"time", "level", "logger", "message", ...extra fields}``; in a Celery task also
    ``task`` and ``task_id``."""

    def __init__(self):
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        )

    def add_fields(self, log_data, record, message_dict):
        super().add_fields(log_data, record, message_dict)
        task = _current_task()
        if task is not None:
            log_data["task"] = task.name
            log_data["task_id"] = task.request.id

    def format(self, record):
        line = super().format(record)  # orjson escapes C0 control characters
        if _UNESCAPED_IN_JSON.search(line):
            line = _UNESCAPED_IN_JSON.sub(lambda found: f"\\u{ord(found.group()):04x}", line)
        return redact(line)


def _current_task():
    from celery import current_task

    task = current_task._get_current_object()
    if task is None or task.request.id is None:
        return None
    return task


def formatter(name=None):
    return JsonFormatter() if log_format(name) == "json" else TextFormatter()


def config(format_name, level):
    """The ``logging.dictConfig`` of a Wharf process: one handler, stdout, at ``level``."""
    formatter_class = JsonFormatter if log_format(format_name) == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"wharf": {"()": formatter_class}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "wharf",
            }
        },
        "root": {"handlers": ["stdout"], "level": level},
    }


def configure(logging_settings):
    """Django's LOGGING_CONFIG: apply LOGGING, and send Python's warnings through it too,
    so that nothing but log lines reaches the output."""
    logging.config.dictConfig(logging_settings)
    logging.captureWarnings(True)
