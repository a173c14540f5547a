"""Values every page template may use."""

from django.conf import settings


def site(request):
    return {
        "signup_open": settings.WHARF_ALLOW_SIGNUP,
        "github_login": bool(settings.GITHUB_CLIENT_ID),
    }
