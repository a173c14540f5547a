"""Model fields that every app may use for text its users write.

A TextField's ``max_length`` bounds what forms, serializers and the admin accept, but
neither the database nor ``full_clean`` checks it; the domain functions that create rows
call ``full_clean``, and must refuse as much as the forms do. Lives in ``accounts``, the
bottom app, so that every app may use it.
"""

from django.core.validators import MaxLengthValidator
from django.db import models


def bounded_text(max_length, **options):
    """A TextField of at most ``max_length`` characters, checked by forms, serializers
    and ``full_clean`` alike (not by the database: longer rows stored before stay)."""
    return models.TextField(
        max_length=max_length, validators=[MaxLengthValidator(max_length)], **options
    )
