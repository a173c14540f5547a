"""Adding, re-ranking and removing channel members, with the rules that hold for all.

Each change is recorded in the audit log; ``request`` names who made it and from where.
"""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from accounts import audit

from .models import Membership, Role


def find_user(identifier):
    """The active user with exactly this username or e-mail address, or None.

    Only exact matches: looking someone up must not list the instance's users.
    """
    identifier = (identifier or "").strip()
    if not identifier:
        return None
    users = get_user_model().objects.filter(is_active=True)
    query = Q(email__iexact=identifier) if "@" in identifier else Q(username=identifier)
    found = list(users.filter(query)[:2])
    return found[0] if len(found) == 1 else None


@transaction.atomic
def add(channel, user, role=Role.MEMBER, *, request=None):
    if channel.memberships.filter(user=user).exists():
        raise ValidationError(f"{user.username} is already a member of '{channel.name}'.")
    membership = Membership.objects.create(channel=channel, user=user, role=role)
    audit.record("member.added", channel=channel, request=request, user=user.username, role=role)
    return membership


@transaction.atomic
def change_role(membership, role, *, request=None):
    previous = membership.role
    if previous == Role.OWNER and role != Role.OWNER:
        _keep_an_owner(membership)
    membership.role = role
    membership.save(update_fields=["role"])
    if role != previous:
        audit.record(
            "member.role_changed",
            channel=membership.channel,
            request=request,
            user=membership.user.username,
            role=role,
            previous_role=previous,
        )
    return membership


@transaction.atomic
def remove(membership, *, request=None):
    if membership.role == Role.OWNER:
        _keep_an_owner(membership)
    membership.delete()
    audit.record(
        "member.removed",
        channel=membership.channel,
        request=request,
        user=membership.user.username,
        role=membership.role,
    )


KEEP_AN_OWNER = "A channel must keep at least one owner."


def has_other_owner(membership, *, lock=False):
    """Whether the channel has an owner besides this membership.

    A channel of an organisation always has one: the organisation's owners own it (and
    an organisation keeps at least one owner).
    """
    if membership.channel.organization_id is not None:
        return True
    owners = Membership.objects.filter(channel_id=membership.channel_id, role=Role.OWNER)
    owners = owners.exclude(pk=membership.pk)
    return (owners.select_for_update() if lock else owners).exists()


def _keep_an_owner(membership):
    if not has_other_owner(membership, lock=True):
        raise ValidationError(KEEP_AN_OWNER)
