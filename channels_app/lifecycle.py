"""Creating and deleting channels, with what has to happen around the rows."""

from django.db import transaction

from accounts import audit

from .models import Channel, Membership, Role


def create_channel(owner, name, *, description="", private=False, organization=None, request=None):
    """Create a channel owned by ``owner``, with its empty noarch index published.

    With an ``organization`` the channel belongs to it: its owners and admins own the
    channel, and ``owner`` (who created it) gets no membership of their own. The caller
    checks that ``owner`` may create channels there (``accounts.organizations``).
    With the ``request`` that asked for it, the creation goes into the audit log.
    """
    from packages_app.index.publishing import publish_empty_noarch

    with transaction.atomic():
        channel = Channel(
            name=name, description=description, private=private, created_by=owner,
            organization=organization,
        )  # fmt: skip
        channel.full_clean()
        channel.save()
        if organization is None:
            Membership.objects.create(channel=channel, user=owner, role=Role.OWNER)
        publish_empty_noarch(channel)
        if request is not None:
            details = {"organization": organization.name} if organization else {}
            audit.record(
                "channel.created", channel=channel, request=request, private=private, **details
            )
    return channel


def delete_channel(channel, *, request=None):
    """Delete a channel, its package files and its published index files (audited, with
    the ``request`` that asked for it)."""
    from packages_app.intake.uploads import forget_channel_storage

    with transaction.atomic():
        forget_channel_storage(channel)
        channel.delete()
        if request is not None:
            audit.record("channel.deleted", channel=channel, request=request)
