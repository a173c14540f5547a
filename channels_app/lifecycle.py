"""Creating and deleting channels, with what has to happen around the rows."""

from django.db import transaction

from accounts import audit

from .models import Channel, Membership, Role


def create_channel(owner, name, *, description="", private=False, request=None):
    """Create a channel owned by ``owner``, with its empty noarch index published.

    With the ``request`` that asked for it, the creation goes into the audit log.
    """
    from packages_app.indexing import publish_empty_noarch

    with transaction.atomic():
        channel = Channel(name=name, description=description, private=private, created_by=owner)
        channel.full_clean()
        channel.save()
        Membership.objects.create(channel=channel, user=owner, role=Role.OWNER)
        publish_empty_noarch(channel)
        if request is not None:
            audit.record("channel.created", channel=channel, request=request, private=private)
    return channel


def delete_channel(channel, *, request=None):
    """Delete a channel, its package files and its published index files (audited, with
    the ``request`` that asked for it)."""
    from packages_app.uploads import forget_channel_storage

    with transaction.atomic():
        forget_channel_storage(channel)
        channel.delete()
        if request is not None:
            audit.record("channel.deleted", channel=channel, request=request)
