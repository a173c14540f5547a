"""``{% other_labels channel as labels %}``: the channel's labels besides main, for its page."""

from django import template

from packages_app.files import labels as file_labels
from packages_app.models import MAIN_LABEL

register = template.Library()


@register.simple_tag
def other_labels(channel):
    """[{"name", "files"}] of the channel's labels other than main, by name."""
    return [label for label in file_labels.of_channel(channel) if label["name"] != MAIN_LABEL]
