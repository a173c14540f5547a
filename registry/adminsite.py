"""The Django admin, opened to channel owners for their own channels.

Wharf grants rights by channel role, not by Django's model permissions. A user who owns
a channel may sign in here, staff or not, and sees the channels they own with their
members, related channels and package files (:class:`ChannelOwnedAdmin`,
:class:`ChannelPartInline`). Likewise the organisations a user manages by the
organisation policy of the pages and the API (``channels_app.access.org_allows``: owners
and admins) are theirs here, with their members, invitations, teams and the teams'
channel roles (:class:`OrganizationOwnedAdmin`); deleting one stays the owners'. The
site's own models — users, tokens, groups, index internals — keep Django's model
permissions, which channel owners are not given. Superusers see everything.
"""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig

# Models are imported inside the functions: this module is loaded with the app registry
# (INSTALLED_APPS names WharfAdminConfig), before any model may be.


def owned_channels(user):
    """The channels the user manages in the admin: every one for a superuser, else those
    where their role grants :attr:`Action.MANAGE`."""
    from channels_app.access import ROLE_ACTIONS, Action, has_role
    from channels_app.models import Channel

    if user.is_superuser:
        return Channel.objects.all()
    if not user.is_authenticated:
        return Channel.objects.none()
    roles = [role for role, actions in ROLE_ACTIONS.items() if Action.MANAGE in actions]
    return Channel.objects.filter(has_role(user, roles))


def manages(user, channel=None):
    """Whether the user manages ``channel`` in the admin; with no channel, any channel."""
    if user.is_superuser:
        return True
    channels = owned_channels(user)
    if channel is not None:
        channels = channels.filter(pk=channel.pk)
    return channels.exists()


class ScopedAdmin(admin.ModelAdmin):
    """The rows within what the signed-in user manages (:meth:`scope`), and rights on them.

    :attr:`scope_path` leads from the model to the managed object; a foreign key of that
    name offers only the managed ones.
    """

    scope_path = None

    def scope(self, user):
        raise NotImplementedError

    def get_queryset(self, request):
        rows = super().get_queryset(request)
        if request.user.is_superuser:
            return rows
        return rows.filter(**{f"{self.scope_path}__in": self.scope(request.user)})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == self.scope_path:
            kwargs["queryset"] = self.scope(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def _manages(self, request, obj=None):
        if obj is None:
            return request.user.is_superuser or self.scope(request.user).exists()
        return self.get_queryset(request).filter(pk=obj.pk).exists()

    def has_module_permission(self, request):
        return self._manages(request)

    def has_view_permission(self, request, obj=None):
        return self._manages(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._manages(request, obj)

    def has_add_permission(self, request):
        return self._manages(request)

    def has_delete_permission(self, request, obj=None):
        return self._manages(request, obj)


class ScopedInline(admin.TabularInline):
    """An inline whose rights follow the page's object (``obj``): :meth:`manages`."""

    def manages(self, user, obj):
        raise NotImplementedError

    def has_view_permission(self, request, obj=None):
        return self.manages(request.user, obj)

    def has_change_permission(self, request, obj=None):
        return self.manages(request.user, obj)

    def has_add_permission(self, request, obj=None):
        return self.manages(request.user, obj)

    def has_delete_permission(self, request, obj=None):
        return self.manages(request.user, obj)


class ChannelOwnedAdmin(ScopedAdmin):
    """The rows of the channels the signed-in user manages, and rights on them.

    ``channel_path`` leads from the model to its channel ("pk" for Channel itself).
    A foreign key of that name offers only the managed channels.
    """

    channel_path = "channel"

    @property
    def scope_path(self):
        return self.channel_path

    def scope(self, user):
        return owned_channels(user)


class ChannelPartInline(ScopedInline):
    """An inline on the channel page: rights follow the channel (``obj``)."""

    def manages(self, user, obj):
        return manages(user, obj)


def managed_organizations(user, action=None):
    """The organisations the user manages in the admin: every one for a superuser, else
    those where the organisation policy (``channels_app.access``) grants them ``action``
    (an ``OrgAction``; None: changing the organisation, which owners and admins may)."""
    from accounts.models import Organization
    from channels_app.access import OrgAction, organizations_allowing

    if user.is_superuser:
        return Organization.objects.all()
    return organizations_allowing(user, action or OrgAction.CHANGE)


def manages_organization(user, organization=None, action=None):
    """Whether the policy grants the user ``action`` (as :func:`managed_organizations`)
    on ``organization`` in the admin; with none, on any organisation."""
    from channels_app.access import OrgAction, org_allows

    if user.is_superuser:
        return True
    if organization is None:
        return managed_organizations(user, action).exists()
    return org_allows(user, organization, action or OrgAction.CHANGE)


class OrganizationOwnedAdmin(ScopedAdmin):
    """The rows of the organisations the signed-in user manages, and rights on them.

    ``organization_path`` leads from the model to its organisation ("pk" for the
    organisation itself); a foreign key of that name offers only the managed ones.
    ``organization_action`` is the ``OrgAction`` managing these rows needs (None:
    changing the organisation).
    """

    organization_path = "organization"
    organization_action = None

    @property
    def scope_path(self):
        return self.organization_path

    def scope(self, user):
        return managed_organizations(user, self.organization_action)


class OrganizationPartInline(ScopedInline):
    """An inline on an organisation's or team's page: rights follow the organisation and
    the policy's answer for ``organization_action`` (None: changing it)."""

    organization_action = None

    def manages(self, user, obj):
        organization = getattr(obj, "organization", obj)
        return manages_organization(user, organization, self.organization_action)


class WharfAdminSite(admin.AdminSite):
    site_header = "Wharf administration"
    site_title = "Wharf"

    @property
    def login_form(self):
        # Any active user may sign in; has_permission then decides whether the admin
        # opens, and tells a signed-in user without a channel that they may not use it.
        # A wrong password counts towards the address's failure limit.
        from accounts.authentication import SignInForm

        return SignInForm

    def has_permission(self, request):
        user = request.user
        return user.is_active and (user.is_staff or manages(user) or manages_organization(user))


class WharfAdminConfig(AdminConfig):
    default_site = "registry.adminsite.WharfAdminSite"
