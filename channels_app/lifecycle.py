"""Creating and deleting channels, with what has to happen around the rows."""

from django.db import transaction

from .models import Channel, Membership, Role


def create_channel(owner, name, *, description="", private=False):
    """Create a channel owned by ``owner``, with its empty noarch index published."""
    from packages_app.indexing import publish_empty_noarch

    with transaction.atomic():
        channel = Channel(name=name, description=description, private=private, created_by=owner)
        channel.full_clean()
        channel.save()
        Membership.objects.create(channel=channel, user=owner, role=Role.OWNER)
        publish_empty_noarch(channel)
    return channel


def delete_channel(channel):
    """Delete a channel, its package files and its published index files."""
    from packages_app.uploads import forget_channel_storage

    with transaction.atomic():
        forget_channel_storage(channel)
        channel.delete()
