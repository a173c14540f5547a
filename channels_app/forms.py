from django import forms
from django.core.exceptions import ValidationError

from . import members, related, sources
from .models import Channel, Kind, Role
from .orgs.operations import managed_organizations


class ChannelForm(forms.ModelForm):
    owner = forms.ChoiceField(
        required=False,
        help_text="You, or an organisation where you are an owner or admin: its owners and "
        "admins then own the channel.",
    )

    class Meta:
        model = Channel
        fields = ["name", "description", "private"]
        help_texts = {
            "name": "Lowercase letters, digits, '-', '_' and '.'; part of the channel URL.",
            "private": "Only members can see and install from a private channel.",
        }
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}

    # Shown to those who may set an upstream (channels_app.sources.may_set_upstream).
    upstream_url = forms.URLField(
        label="Upstream channel", required=False, assume_scheme="https",
        help_text="Leave empty for a channel of your own uploads. An upstream channel's URL "
        "(e.g. https://conda.anaconda.org/conda-forge) makes this channel a proxy of it "
        "(packages fetched when first asked for, and kept) or a mirror (copied by runs).",
    )  # fmt: skip
    upstream_mode = forms.ChoiceField(
        label="Upstream kind", required=False, initial=Kind.PROXY,
        choices=[(Kind.PROXY, "proxy"), (Kind.MIRROR, "mirror")],
    )  # fmt: skip
    upstream_include = forms.CharField(
        label="Mirror only", required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="For a mirror: package names, globs or match specs, one per line "
        "(e.g. numpy, lib*, python >=3.10). Empty: every package.",
    )  # fmt: skip

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.organizations = {org.name: org for org in managed_organizations(user)}
        self.fields["owner"].choices = [("", f"{user.username} (you)")] + [
            (name, name) for name in self.organizations
        ]

    def clean(self):
        data = super().clean()
        url = data.get("upstream_url")
        if not url:
            return data
        if not sources.may_set_upstream(self.user, data.get("owner")):
            self.add_error(None, "Only site administrators create proxy and mirror channels.")
            return data
        mode = data.get("upstream_mode") or Kind.PROXY
        given = {"url": url}
        if mode == Kind.MIRROR:
            lines = (data.get("upstream_include") or "").splitlines()
            given["include"] = [line.strip() for line in lines if line.strip()]
        try:
            data["upstream"] = {"mode": mode, **sources.check_upstream(given, mode)}
        except ValidationError as exc:
            self.add_error("upstream_url", exc)
        return data

    def clean_owner(self):
        """The organisation that will own the channel; None for the signed-in user."""
        return self.organizations.get(self.cleaned_data["owner"])

    def clean_name(self):
        name = self.cleaned_data["name"]
        if Channel.objects.filter(name=name).exists():
            # Also when the channel is private: taking a name is not reading the channel.
            raise ValidationError("A channel with this name already exists.")
        return name


class ChannelSettingsForm(forms.ModelForm):
    related_channels = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=(
            "One per line, in the order clients should use them: the name of another "
            "channel here, or the URL of an external channel such as "
            "https://conda.anaconda.org/conda-forge."
        ),
    )

    class Meta:
        model = Channel
        fields = ["description", "private"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}
        help_texts = {"private": "Only members can see and install from a private channel."}

    def __init__(self, *args, caller, **kwargs):
        super().__init__(*args, **kwargs)
        self.caller = caller
        if not self.is_bound:
            self.initial["related_channels"] = related.as_text(self.instance)

    def clean_related_channels(self):
        text = self.cleaned_data["related_channels"]
        self.related_entries = related.parse(self.instance, text, self.caller)
        return text

    def save(self, commit=True):
        channel = super().save(commit=commit)
        related.replace(channel, self.related_entries)
        return channel


class AddMemberForm(forms.Form):
    user = forms.CharField(
        label="Username or e-mail",
        max_length=254,
        help_text="The exact username or e-mail address of someone with an account here.",
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)

    def clean_user(self):
        user = members.find_user(self.cleaned_data["user"])
        if user is None:
            raise ValidationError(f"No account '{self.cleaned_data['user']}' here.")
        return user


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class DeleteChannelForm(forms.Form):
    confirm = forms.CharField(label="Type the channel name to confirm", max_length=100)

    def __init__(self, *args, channel, **kwargs):
        super().__init__(*args, **kwargs)
        self.channel = channel

    def clean_confirm(self):
        if self.cleaned_data["confirm"] != self.channel.name:
            raise ValidationError(f"Type '{self.channel.name}' exactly to delete the channel.")
        return self.cleaned_data["confirm"]
