"""The Django admin, opened to channel owners for their own channels."""

from django.contrib.admin import AdminSite
from django.contrib.admin.apps import AdminConfig


class WharfAdminSite(AdminSite):
    site_header = "Wharf administration"
    site_title = "Wharf"


class WharfAdminConfig(AdminConfig):
    default_site = "registry.adminsite.WharfAdminSite"
