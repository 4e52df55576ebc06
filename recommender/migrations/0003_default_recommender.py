"""Every install starts with one recommender, ``default``, with the default settings."""

from django.conf import settings
from django.db import migrations


def create_default_recommender(apps, schema_editor):
    Recommender = apps.get_model("recommender", "Recommender")
    Recommender.objects.get_or_create(
        name="default",
        defaults={
            "description": "The default recommender.",
            "event_weights": dict(settings.RECSITE_EVENT_TYPES),
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("recommender", "0002_registry"),
    ]

    operations = [
        migrations.RunPython(create_default_recommender, migrations.RunPython.noop),
    ]
