"""Admin test helpers: staff clients holding exactly the permissions a test names."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client


@pytest.fixture
def staff_client(db):
    """``staff_client("training.start_training_run", ...)`` -> a logged-in client of a
    staff user (not a superuser) with the view permissions of the admin pages plus the
    given ones."""
    counter = iter(range(1000))

    def make(*perms: str) -> Client:
        user = User.objects.create_user(f"staff{next(counter)}", is_staff=True)
        wanted = {
            "recommender.view_recommender",
            "recommender.change_recommender",
            "recommender.view_modelversion",
            "recommender.view_promotionevent",
            "recommender.view_apikey",
            "training.view_trainingrun",
            *perms,
        }
        for perm in wanted:
            app_label, codename = perm.split(".")
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        client = Client()
        client.force_login(user)
        return client

    return make
