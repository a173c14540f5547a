"""Forms of the organisation pages. They parse what was posted; the rules are checked by
:mod:`channels_app.orgs.operations`, whose errors the views put on these forms."""

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from accounts.models import Organization, OrgRole, Team
from channels_app.models import Role


class OrganizationForm(forms.ModelForm):
    class Meta:
        model = Organization
        fields = ["name", "display_name", "description"]
        help_texts = {
            "name": "Lowercase letters, digits, '-', '_' and '.'; part of the page's URL.",
            "display_name": "Optional; shown beside the name.",
        }
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}


class OrganizationSettingsForm(forms.Form):
    # Not a ModelForm: validating one changes the instance before
    # organizations.update_organization can tell what changed. The fields are the model's,
    # so that their length limits are too.
    display_name = Organization._meta.get_field("display_name").formfield()
    description = Organization._meta.get_field("description").formfield(
        widget=forms.Textarea(attrs={"rows": 3})
    )

    def __init__(self, *args, organization, **kwargs):
        initial = {"display_name": organization.display_name,
                   "description": organization.description}  # fmt: skip
        super().__init__(*args, initial=initial, **kwargs)


class DeleteOrganizationForm(forms.Form):
    confirm = forms.CharField(label="Type the organisation name to confirm", max_length=100)

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.organization = organization

    def clean_confirm(self):
        if self.cleaned_data["confirm"] != self.organization.name:
            raise ValidationError(
                f"Type '{self.organization.name}' exactly to delete the organisation."
            )
        return self.cleaned_data["confirm"]


class InviteForm(forms.Form):
    identifier = forms.CharField(
        label="Username or e-mail",
        max_length=254,
        help_text="An exact username, or an e-mail address (people without an account "
        "here get the invitation by e-mail).",
    )
    role = forms.ChoiceField(choices=OrgRole.choices, initial=OrgRole.MEMBER)


class OrgRoleForm(forms.Form):
    role = forms.ChoiceField(choices=OrgRole.choices)


class TeamForm(forms.Form):
    # The model's fields, with their length limits (the REST API's too).
    name = Team._meta.get_field("name").formfield(
        help_text="Lowercase letters, digits, '-' and '_'; part of the URL."
    )
    description = Team._meta.get_field("description").formfield(
        widget=forms.Textarea(attrs={"rows": 2})
    )


class TeamMemberForm(forms.Form):
    username = forms.CharField(
        max_length=150, help_text="The exact username of a member of the organisation."
    )

    def clean_username(self):
        username = self.cleaned_data["username"].strip()
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise ValidationError(f"No user with username '{username}'.")
        return user


class TeamChannelForm(forms.Form):
    channel = forms.ModelChoiceField(queryset=None, to_field_name="name", empty_label=None)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["channel"].queryset = organization.channels.order_by("name")


class TransferChannelForm(forms.Form):
    """Move a channel to one of the organisations its owner manages."""

    organization = forms.ModelChoiceField(
        queryset=None,
        to_field_name="name",
        label="Organisation",
        empty_label=None,
        help_text="Its owners and admins become owners of the channel; its members keep "
        "their roles.",
    )

    def __init__(self, *args, organizations, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["organization"].queryset = organizations
