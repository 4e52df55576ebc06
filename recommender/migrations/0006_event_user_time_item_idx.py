"""The (user, -timestamp) index of events also holds the item (INCLUDE, PostgreSQL), so
serving's recent-items query is an index-only scan.

On PostgreSQL the new index is built and the old one dropped CONCURRENTLY: ingestion
keeps writing while a large events table is indexed (hence ``atomic = False``). Other
databases build it plainly (without INCLUDE, which only PostgreSQL supports)."""

from django.db import migrations, models

OLD = models.Index(fields=["user_external_id", "-timestamp"], name="event_user_time_idx")
NEW = models.Index(
    fields=["user_external_id", "-timestamp"], name="event_user_time_item_idx", include=["item"]
)


def _options(schema_editor) -> dict:
    return {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}


def forwards(apps, schema_editor) -> None:
    event = apps.get_model("recommender", "Event")
    schema_editor.add_index(event, NEW, **_options(schema_editor))
    schema_editor.remove_index(event, OLD, **_options(schema_editor))


def backwards(apps, schema_editor) -> None:
    event = apps.get_model("recommender", "Event")
    schema_editor.add_index(event, OLD, **_options(schema_editor))
    schema_editor.remove_index(event, NEW, **_options(schema_editor))


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("recommender", "0005_modelversion_permissions"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="event", name="event_user_time_idx"),
                migrations.AddIndex(model_name="event", index=NEW),
            ],
            database_operations=[migrations.RunPython(forwards, backwards)],
        ),
    ]
