"""Creating and deleting channels, with what has to happen around the rows.

What the apps above channels_app keep for a channel (package files, published indexes)
they set up and clear through :func:`register`: packages_app registers publishing the
empty noarch index and forgetting the channel's stored files in its ``AppConfig.ready``.
"""

from django.db import transaction

from accounts import audit

from .models import Channel, Membership, Role

# Called with each new channel, in the transaction that creates it, after its rows.
on_channel_created = []
# Called with each channel about to be deleted, in the transaction that deletes it,
# before its rows go.
on_channel_deleted = []


def register(*, created=None, deleted=None):
    """Have ``created(channel)`` run on every channel creation and ``deleted(channel)``
    on every deletion (see :data:`on_channel_created`, :data:`on_channel_deleted`), in
    the order registered; registering a function twice keeps it once."""
    for hooks, hook in ((on_channel_created, created), (on_channel_deleted, deleted)):
        if hook is not None and hook not in hooks:
            hooks.append(hook)


def create_channel(
    owner, name, *, description="", private=False, organization=None, request=None, kind="hosted"
):
    """Create a channel owned by ``owner``, with what the apps above set up for it (its
    empty noarch index published).

    With an ``organization`` the channel belongs to it: its owners and admins own the
    channel, and ``owner`` (who created it) gets no membership of their own. The caller
    checks that ``owner`` may create channels there (``channels_app.orgs.operations``).
    With the ``request`` that asked for it, the creation goes into the audit log.
    """
    with transaction.atomic():
        channel = Channel(
            name=name, description=description, private=private, created_by=owner,
            organization=organization, kind=kind,
        )  # fmt: skip
        channel.full_clean()
        channel.save()
        if organization is None:
            Membership.objects.create(channel=channel, user=owner, role=Role.OWNER)
        for hook in on_channel_created:
            hook(channel)
        if request is not None:
            details = {"organization": organization.name} if organization else {}
            if kind != "hosted":
                details["kind"] = kind
            audit.record(
                "channel.created",
                channel=channel,
                request=request,
                private=private,
                **details,
            )
    return channel


def delete_channel(channel, *, request=None):
    """Delete a channel and what the apps above keep for it (its package files and
    published index files); audited, with the ``request`` that asked for it."""
    with transaction.atomic():
        for hook in on_channel_deleted:
            hook(channel)
        channel.delete()
        if request is not None:
            audit.record("channel.deleted", channel=channel, request=request)
