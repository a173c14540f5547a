"""Web pages of the signed-in user: profile and API keys."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from channels_app import install

from . import audit
from .forms import ApiKeyForm
from .models import ApiToken


@login_required
def profile(request):
    memberships = request.user.memberships.select_related("channel").order_by("channel__name")
    return render(request, "accounts/profile.html", {"memberships": memberships})


@never_cache
@login_required
def api_keys(request):
    """List and create keys. A new key's secret is in the answer to the POST only."""
    form = ApiKeyForm(request.user, request.POST if request.method == "POST" else None)
    created = None
    if form.is_valid():
        token, secret = form.save()
        audit.record("token.created", request=request, **audit.token_details(token))
        created = {
            "token": token,
            "secret": secret,
            "commands": _login_commands(request, token, secret),
        }
        form = ApiKeyForm(request.user)
    keys = ApiToken.objects.filter(user=request.user).prefetch_related("channels")
    return render(
        request, "accounts/api_keys.html", {"form": form, "keys": keys, "created": created}
    )


def _login_commands(request, token, secret):
    """``(client, command)`` pairs that put the secret to use: pixi and micromamba log in
    once per host (pixi by host name, micromamba by host and port); conda takes the
    secret inside the channel URL."""
    base = request.build_absolute_uri("/").rstrip("/")
    channel = next((c.name for c in token.channels.all()), "<channel>")
    pixi, micromamba = install.login_commands(request, secret)
    return [
        ("pixi", pixi),
        ("micromamba", micromamba),
        ("conda", f"conda install -c {base}/t/{secret}/{channel} <package>"),
    ]


@login_required
@require_POST
def revoke_key(request, key_id):
    token = get_object_or_404(ApiToken, pk=key_id, user=request.user)
    if token.revoke():
        audit.record("token.revoked", request=request, **audit.token_details(token))
    messages.success(request, f"API key “{token.name}” revoked; it no longer works.")
    return redirect("api-keys")
