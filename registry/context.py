"""Values every page template may use."""

from functools import partial

from django.conf import settings


def site(request):
    from accounts.organizations import count_pending_invitations

    return {
        "signup_open": settings.WHARF_ALLOW_SIGNUP,
        "github_login": bool(settings.GITHUB_CLIENT_ID),
        # A callable: counted (one query) only when a page shows it.
        "pending_invitation_count": partial(count_pending_invitations, request.user),
    }
