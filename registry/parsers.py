"""REST request bodies as DRF parses them, refused (400) when a string holds a control
character.

PostgreSQL cannot store NUL in text, and the other C0 characters and DEL have no place in
a name, a description or a reason. DRF's CharField refuses NUL, but not the others, and a
view that reads ``request.data`` itself (a yank reason, a list of labels) bypasses it.
These parsers are REST_FRAMEWORK's DEFAULT_PARSER_CLASSES: every body is checked once,
whatever reads it next. Tab, newline and carriage return stay: a description has lines.
Field names are checked too, and the refusal names the field.
"""

from collections import deque

from django.utils.datastructures import MultiValueDict
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from .hygiene import CONTROL_IN_TEXT


def check_strings(data):
    """Raise ParseError naming the first field (``a.b[2]``) whose name or text holds a
    control character other than tab, newline and carriage return."""
    # A loop, not recursion: JSON nested as deep as the parser allowed must not overflow.
    # Breadth first, so that the outermost field is the one named.
    pending = deque([("", data)])
    while pending:
        where, value = pending.popleft()
        if isinstance(value, str):
            found = CONTROL_IN_TEXT.search(value)
            if found:
                raise ParseError(
                    f"The field '{where or '(body)'}' contains the control character "
                    f"U+{ord(found.group()):04X}; only tab, newline and carriage return "
                    "are allowed in text."
                )
        elif isinstance(value, dict):
            if isinstance(value, MultiValueDict):  # a form: a name may come more than once
                items = ((key, item) for key, items in value.lists() for item in items)
            else:
                items = value.items()
            for key, item in items:
                if isinstance(key, str) and CONTROL_IN_TEXT.search(key):
                    raise ParseError(
                        f"A field name ({key!r}) contains a control character; remove it."
                    )
                pending.append((f"{where}.{key}" if where else str(key), item))
        elif isinstance(value, list):
            pending.extend((f"{where}[{index}]", item) for index, item in enumerate(value))


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
        check_strings(data)
        return data


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        check_strings(data)
        return data


class MultiPartParser(parsers.MultiPartParser):
    """Form fields of a multipart body; the files in it are bytes, not text."""

    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        check_strings(parsed.data)
        return parsed
