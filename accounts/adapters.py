"""django-allauth hooks: whether this instance accepts new accounts, and counting failed
sign-ins towards the failure limit of the client's address."""

from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.conf import settings

from .authentication import failure_limit


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request):
        return settings.WHARF_ALLOW_SIGNUP

    def authentication_failed(self, request, **credentials):
        # Where allauth's sign-in (and re-authentication) found no account for the
        # credentials: a wrong password counts as one guess, as an unknown token does.
        super().authentication_failed(request, **credentials)
        failure_limit.failed(request)


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request, sociallogin):
        return settings.WHARF_ALLOW_SIGNUP
