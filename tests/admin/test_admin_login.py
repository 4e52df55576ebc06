"""Staff sign-in: lockouts after repeated failures (django-axes), password validators,
the session's age."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"
PASSWORD = "a-long-staff-passphrase"


@pytest.fixture
def staff():
    return get_user_model().objects.create_user(
        "operator", password=PASSWORD, is_staff=True, is_superuser=True
    )


def login(client: Client, username: str, password: str, ip: str = "10.0.0.1", **meta):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip, **meta)


def signed_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == "/admin/"


def test_a_username_is_locked_out_after_the_failure_limit_from_any_address(client, staff):
    answers = [
        login(client, "operator", "wrong", ip=f"10.0.1.{n}").status_code
        for n in range(settings.AXES_FAILURE_LIMIT)
    ]
    assert answers == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]
    # the right password, from yet another address: refused while the lockout lasts
    refused = login(Client(), "operator", PASSWORD, ip="10.0.2.1")
    assert refused.status_code == 429
    assert not signed_in(refused)


def test_an_address_is_locked_out_after_failures_on_many_usernames(client, staff):
    for n in range(settings.AXES_FAILURE_LIMIT):
        login(client, f"guess{n}", "wrong", ip="10.0.3.3")
    assert login(Client(), "operator", PASSWORD, ip="10.0.3.3").status_code == 429
    assert signed_in(login(Client(), "operator", PASSWORD, ip="10.0.3.4"))


def test_fewer_failures_than_the_limit_then_success_resets_the_count(client, staff):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        login(client, "operator", "wrong")
    assert signed_in(login(Client(), "operator", PASSWORD))
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        login(Client(), "operator", "wrong")
    assert signed_in(login(Client(), "operator", PASSWORD))


def test_behind_the_proxy_the_forwarded_address_is_counted(client, staff, settings):
    """Every request reaches Django from the proxy's address: counting that one would let
    anyone lock every member of staff out."""
    settings.RECSITE_PROXY_COUNT = 1
    proxy = "10.9.9.9"
    for n in range(settings.AXES_FAILURE_LIMIT):  # a forged entry first: the proxy's counts
        login(client, f"guess{n}", "wrong", ip=proxy, HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.7")
    attacker = login(Client(), "operator", PASSWORD, ip=proxy, HTTP_X_FORWARDED_FOR="203.0.113.7")
    colleague = login(Client(), "operator", PASSWORD, ip=proxy, HTTP_X_FORWARDED_FOR="198.51.100.2")
    assert attacker.status_code == 429
    assert signed_in(colleague)


@pytest.mark.parametrize("password", ["short", "password1234", "12345678901234", "operator-x"])
def test_weak_passwords_are_refused(staff, password):
    with pytest.raises(ValidationError):
        validate_password(password, user=staff if password.startswith("operator") else None)


def test_a_strong_password_passes(staff):
    validate_password("correct horse battery staple", user=staff)


def test_a_staff_session_lasts_eight_hours_by_default():
    assert settings.SESSION_COOKIE_AGE == 8 * 3600
