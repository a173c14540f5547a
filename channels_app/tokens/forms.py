"""The form of a new API key on the API keys page."""

from django import forms

from accounts.models import ApiToken

from . import rules

# As in the REST API (channels_app/tokens/api.py): at most ten years.
MAX_EXPIRY_DAYS = 3650
EXPIRY_CHOICES = [
    ("never", "Never"),
    ("30", "In 30 days"),
    ("90", "In 90 days"),
    ("365", "In 365 days"),
    ("days", "After a number of days"),
]


class ApiKeyForm(forms.Form):
    """A new API key, with the rules of the REST API (:mod:`channels_app.tokens.rules`): a
    key may be limited only to channels where its user holds a role."""

    # The model's field, with its length limit (that of the REST API and create_token).
    name = ApiToken._meta.get_field("name").formfield(
        help_text="What the key is for, e.g. “CI uploads”."
    )
    expiry = forms.ChoiceField(label="Expires", choices=EXPIRY_CHOICES, initial="90")
    days = forms.IntegerField(
        label="Number of days",
        required=False,
        min_value=1,
        max_value=MAX_EXPIRY_DAYS,
        help_text="Used when “After a number of days” is chosen.",
    )
    channels = forms.ModelMultipleChoiceField(
        label="Limit to channels",
        queryset=None,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None checked: the key works for all your channels.",
    )
    read_only = forms.BooleanField(
        label="Read-only",
        required=False,
        help_text="The key can download packages but not upload, delete or manage.",
    )

    def __init__(self, caller, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.caller = caller
        self.fields["channels"].queryset = rules.limitable_channels(caller).order_by("name")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("expiry") == "days" and cleaned.get("days") is None:
            self.add_error("days", "Enter the number of days after which the key expires.")
        return cleaned

    @property
    def expires_in_days(self):
        expiry = self.cleaned_data["expiry"]
        if expiry == "never":
            return None
        if expiry == "days":
            return self.cleaned_data["days"]
        return int(expiry)

    def save(self, request=None):
        """Create the key (:func:`~channels_app.tokens.rules.create_token`, audited with
        ``request``); return ``(token, secret)``."""
        return rules.create_token(
            self.caller,
            self.cleaned_data["name"],
            read_only=self.cleaned_data["read_only"],
            channels=list(self.cleaned_data["channels"]),
            expires_in_days=self.expires_in_days,
            request=request,
        )
