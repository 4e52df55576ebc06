"""Admin test helpers: staff clients holding exactly the permissions a test names."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import staff_client as make_staff_client


@pytest.fixture
def staff_client(db):
    """``staff_client("training.start_training_run", ...)`` -> a logged-in client of a
    staff user (not a superuser) with the view permissions of the admin pages plus the
    given ones."""
    counter = iter(range(1000))

    def make(*perms: str) -> Client:
        wanted = {
            "recommender.view_recommender",
            "recommender.change_recommender",
            "recommender.view_modelversion",
            "recommender.view_promotionevent",
            "recommender.view_apikey",
            "training.view_trainingrun",
            *perms,
        }
        return make_staff_client(f"staff{next(counter)}", *sorted(wanted))

    return make
