"""Web pages of the signed-in user: profile and API keys."""

from django.http import Http404


def profile(request):
    raise Http404("Not built yet.")


def api_keys(request):
    raise Http404("Not built yet.")


def revoke_key(request, key_id):
    raise Http404("Not built yet.")
