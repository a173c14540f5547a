"""Web pages of the signed-in user: the profile. (The API keys page, which limits keys
to channels, is channels_app.tokens.views.)"""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render


@login_required
def profile(request):
    memberships = request.user.memberships.select_related("channel").order_by("channel__name")
    return render(request, "accounts/profile.html", {"memberships": memberships})
