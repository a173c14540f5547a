"""The API keys page of the signed-in user: list, create and revoke keys."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts import audit
from accounts.authentication import Caller
from accounts.models import ApiToken
from channels_app import install

from .forms import ApiKeyForm


@never_cache
@login_required
def api_keys(request):
    """List and create keys. A new key's secret is in the answer to the POST only."""
    caller = Caller(request.user)
    form = ApiKeyForm(caller, request.POST if request.method == "POST" else None)
    created = None
    if form.is_valid():
        try:
            token, secret = form.save(request=request)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            created = {
                "token": token,
                "secret": secret,
                "commands": _login_commands(request, token, secret),
            }
            form = ApiKeyForm(caller)
    keys = ApiToken.objects.filter(user=request.user).prefetch_related("channels")
    # A refused form comes back with its errors, as a 400 like the REST API's.
    return render(
        request, "accounts/api_keys.html", {"form": form, "keys": keys, "created": created},
        status=400 if form.errors else 200,
    )  # fmt: skip


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
