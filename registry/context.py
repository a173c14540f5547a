"""Values every page template may use."""

from functools import partial

from django.conf import settings

from channels_app.orgs.operations import count_pending_invitations


def site(request):
    return {
        "signup_open": settings.WHARF_ALLOW_SIGNUP,
        "github_login": bool(settings.GITHUB_CLIENT_ID),
        # A callable: counted (one query) only when a page shows it.
        "pending_invitation_count": partial(count_pending_invitations, request.user),
    }
