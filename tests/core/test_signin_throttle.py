"""Sign-in throttling (django-axes through core.backends.SignInThrottleBackend): wrong
passwords lock the account and the address; an admin unlocks them."""

from __future__ import annotations

from typing import Any

from axes.models import AccessAttempt
from django.test import Client
from django.urls import reverse

from tests.factories import PASSWORD
from tests.helpers import signed_in


def _sign_in(username: str, password: str, address: str) -> Any:
    return Client(REMOTE_ADDR=address).post(
        reverse("login"), {"username": username, "password": password}
    )


def test_twenty_wrong_passwords_lock_the_account_and_the_address_until_an_admin_unlocks(
    db: None, annotator: Any, researcher: Any, admin_user: Any
) -> None:
    answers = [_sign_in("annotator1", f"wrong-{n}", "203.0.113.5") for n in range(20)]
    assert answers[0].status_code == 200  # the form again, with its error
    assert "Please enter a correct username and password" in answers[0].content.decode()
    locked = answers[-1]
    assert locked.status_code == 429
    assert "Sign-in locked" in locked.content.decode()
    assert "Too many wrong passwords" in locked.content.decode()
    # The right password no longer helps: not from that address, not from another one.
    assert _sign_in("annotator1", PASSWORD, "203.0.113.5").status_code == 429
    assert _sign_in("annotator1", PASSWORD, "198.51.100.9").status_code == 429
    # The address is locked for every account; another account elsewhere signs in.
    assert _sign_in("researcher", PASSWORD, "203.0.113.5").status_code == 429
    assert _sign_in("researcher", PASSWORD, "198.51.100.7").status_code == 302

    admin_user.is_superuser = True
    admin_user.save()
    admin = signed_in(admin_user)
    changelist = reverse("admin:axes_accessattempt_changelist")
    listed = admin.get(changelist).content.decode()
    assert "annotator1" in listed and "203.0.113.5" in listed
    ids = list(AccessAttempt.objects.values_list("pk", flat=True))
    unlocked = admin.post(
        changelist, {"action": "delete_selected", "_selected_action": ids, "post": "yes"}
    )
    assert unlocked.status_code == 302
    assert not AccessAttempt.objects.exists()
    assert _sign_in("annotator1", PASSWORD, "203.0.113.5").status_code == 302
    assert _sign_in("researcher", PASSWORD, "203.0.113.5").status_code == 302


def test_a_few_wrong_passwords_do_not_lock_and_a_success_resets_the_count(
    db: None, annotator: Any
) -> None:
    for n in range(5):
        assert _sign_in("annotator1", f"wrong-{n}", "203.0.113.6").status_code == 200
    assert _sign_in("annotator1", PASSWORD, "203.0.113.6").status_code == 302
    for n in range(9):
        assert _sign_in("annotator1", f"wrong-{n}", "203.0.113.6").status_code == 200
