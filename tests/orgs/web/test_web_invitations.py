"""Invitations on the organisation pages: sent by owners and admins, by username or by
email, accepted, declined, withdrawn or expired, and answered only by a post with the CSRF
token."""

from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts.models import Invitation, OrgRole
from channels_app.orgs import operations as organizations

from .pages import messages_of, role_in, text

pytestmark = pytest.mark.django_db


def test_an_invitation_by_username_waits_in_the_invitees_list_until_accepted(web, acme, people):
    admin = web("admin")
    response = admin.post(
        "/orgs/acme/members/", {"action": "invite", "identifier": "stranger", "role": "member"}
    )
    assert response.status_code == 302
    assert not acme.members.filter(user=people["stranger"]).exists()  # never added silently
    members_page = text(admin.get("/orgs/acme/members/"))
    assert "Pending invitations" in members_page and "<td>stranger</td>" in members_page

    stranger = web("stranger")
    invitations = text(stranger.get("/orgs/"))
    invitation = Invitation.objects.get(user=people["stranger"])
    assert "<strong>acme</strong> invites you as <strong>member</strong>" in invitations
    assert f'action="/orgs/invitations/{invitation.pk}/accept/"' in invitations
    # The top bar counts it on every page.
    assert '<span class="badge">1</span>' in text(stranger.get("/channels/"))

    response = stranger.post(f"/orgs/invitations/{invitation.pk}/accept/")

    assert response.status_code == 302 and response["Location"] == "/orgs/acme/"
    assert role_in(acme, people["stranger"]) == OrgRole.MEMBER
    assert stranger.get("/orgs/acme/members/").status_code == 200
    after = text(stranger.get("/orgs/"))
    assert "invites you" not in after and '<span class="badge">' not in after


def test_an_invitation_by_email_reaches_someone_who_signs_up_later(
    web, acme, people, django_user_model, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = web("boss").post(
            "/orgs/acme/members/",
            {"action": "invite", "identifier": "Newbie@Example.org", "role": "admin"},
        )
    assert response.status_code == 302
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["newbie@example.org"]
    assert "/orgs/" in mail.outbox[0].body
    assert "newbie@example.org" in text(web("boss").get("/orgs/acme/members/"))

    newbie = django_user_model.objects.create_user("newbie", "newbie@example.org", "pw")
    client = Client()
    client.force_login(newbie)
    invitation = Invitation.objects.get(email="newbie@example.org")
    invited = "<strong>acme</strong> invites you as <strong>admin</strong>"
    # Until the address is verified, whoever signed up with it cannot take the invitation.
    EmailAddress.objects.create(user=newbie, email="newbie@example.org", verified=False)
    waiting = text(client.get("/orgs/"))
    assert invited not in waiting
    assert "Invitations sent to newbie@example.org appear here once you" in waiting
    assert client.post(f"/orgs/invitations/{invitation.pk}/accept/").status_code == 404
    EmailAddress.objects.filter(user=newbie).update(verified=True)
    confirmed = text(client.get("/orgs/"))
    assert invited in confirmed and "data-unconfirmed" not in confirmed
    client.post(f"/orgs/invitations/{invitation.pk}/accept/")

    assert role_in(acme, newbie) == OrgRole.ADMIN


@pytest.mark.parametrize(
    ("who", "identifier", "role", "message"),
    [
        ("admin", "ghost", "member", "No user with username &#x27;ghost&#x27;."),
        ("admin", "plain", "member", "plain is already a member of &#x27;acme&#x27;."),
        ("admin", "not-an@address", "member", "is not a valid e-mail address"),
        ("admin", "stranger", "owner", "Only owners of &#x27;acme&#x27; may invite owners."),
        ("boss", "stranger", "king", "Select a valid choice"),
        ("boss", "", "member", "This field is required."),
    ],
)
def test_the_invite_form_shows_why_an_invitation_is_refused(
    web, acme, who, identifier, role, message
):
    response = web(who).post(
        "/orgs/acme/members/", {"action": "invite", "identifier": identifier, "role": role}
    )

    assert response.status_code == 400
    assert message in text(response)
    assert not Invitation.objects.filter(accepted_at__isnull=True).exists()


def test_inviting_someone_twice_names_the_pending_invitation(web, acme):
    boss = web("boss")
    form = {"action": "invite", "identifier": "stranger", "role": "member"}
    boss.post("/orgs/acme/members/", form)

    response = boss.post("/orgs/acme/members/", form)

    assert "stranger already has a pending invitation to &#x27;acme&#x27;" in text(response)
    assert Invitation.objects.pending().count() == 1


def test_only_owners_and_admins_invite(web, acme):
    form = {"action": "invite", "identifier": "stranger", "role": "member"}

    assert web("plain").post("/orgs/acme/members/", form).status_code == 403
    assert web("stranger").post("/orgs/acme/members/", form).status_code == 403
    assert "Invite someone" not in text(web("plain").get("/orgs/acme/members/"))
    assert not Invitation.objects.pending().exists()


@pytest.fixture
def invitation(acme, people):
    return organizations.invite(acme, "stranger", OrgRole.MEMBER, people["admin"])


def test_declining_an_invitation_leaves_the_invitee_out(web, acme, people, invitation):
    client = web("stranger")

    response = client.post(f"/orgs/invitations/{invitation.pk}/decline/", follow=True)

    assert "Invitation to &#x27;acme&#x27; declined." in text(response)
    invitation.refresh_from_db()
    assert invitation.status == "declined"
    assert not acme.members.filter(user=people["stranger"]).exists()
    assert "invites you" not in text(client.get("/orgs/"))


def test_a_withdrawn_invitation_disappears_and_cannot_be_accepted(web, acme, people, invitation):
    admin = web("admin")
    response = admin.post(
        "/orgs/acme/members/", {"action": "withdraw", "invitation": invitation.pk}, follow=True
    )
    assert "Invitation of stranger withdrawn." in text(response)
    assert "No pending invitations." in text(response)

    client = web("stranger")
    assert "invites you" not in text(client.get("/orgs/"))
    response = client.post(f"/orgs/invitations/{invitation.pk}/accept/", follow=True)

    assert "This invitation was already withdrawn." in messages_of(response)
    assert not acme.members.filter(user=people["stranger"]).exists()


def test_a_member_may_not_withdraw_invitations(web, acme, invitation):
    response = web("plain").post(
        "/orgs/acme/members/", {"action": "withdraw", "invitation": invitation.pk}
    )

    assert response.status_code == 403
    assert Invitation.objects.get(pk=invitation.pk).is_pending


def test_an_expired_invitation_is_not_shown_nor_acceptable(web, acme, people, invitation):
    Invitation.objects.filter(pk=invitation.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    client = web("stranger")

    page = text(client.get("/orgs/"))
    response = client.post(f"/orgs/invitations/{invitation.pk}/accept/", follow=True)

    assert "invites you" not in page and '<span class="badge">' not in page
    assert any("This invitation expired on" in m for m in messages_of(response))
    assert not acme.members.filter(user=people["stranger"]).exists()
    assert "No pending invitations." in text(web("admin").get("/orgs/acme/members/"))


def test_someone_elses_invitation_answers_as_a_missing_one(web, acme, people, invitation):
    response = web("plain").post(f"/orgs/invitations/{invitation.pk}/accept/")
    missing = web("plain").post("/orgs/invitations/987654/accept/")

    assert response.status_code == missing.status_code == 404
    assert Invitation.objects.get(pk=invitation.pk).is_pending


def test_answering_an_invitation_takes_a_post_with_the_csrf_token(web, acme, people, invitation):
    client = web("stranger", enforce_csrf_checks=True)
    for answer in ("accept", "decline"):
        path = f"/orgs/invitations/{invitation.pk}/{answer}/"
        assert client.get(path).status_code == 405
        assert client.post(path).status_code == 403
    assert Invitation.objects.get(pk=invitation.pk).is_pending

    page = text(client.get("/orgs/"))
    token = page.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
    response = client.post(
        f"/orgs/invitations/{invitation.pk}/accept/", {"csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    assert role_in(acme, people["stranger"]) == OrgRole.MEMBER


def test_every_change_on_the_members_page_needs_the_csrf_token(web, acme, people):
    client = web("boss", enforce_csrf_checks=True)
    plain = acme.members.get(user=people["plain"])

    response = client.post("/orgs/acme/members/", {"action": "remove", "member": plain.pk})

    assert response.status_code == 403
    assert role_in(acme, people["plain"]) == OrgRole.MEMBER
