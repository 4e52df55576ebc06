"""Events ingested per UTC day, counted by ingest (the dashboard's chart), backfilled from
the events stored now (one grouped scan at migrate time)."""

from datetime import UTC

from django.db import migrations, models
from django.db.models import Count
from django.db.models.functions import TruncDate


def backfill(apps, schema_editor):
    Event = apps.get_model("recommender", "Event")
    EventIngestDay = apps.get_model("recommender", "EventIngestDay")
    rows = (
        Event.objects.annotate(day=TruncDate("ingested_at", tzinfo=UTC))
        .values_list("day")
        .annotate(n=Count("pk"))
        .order_by()
    )
    EventIngestDay.objects.bulk_create(EventIngestDay(day=day, events=n) for day, n in rows)


class Migration(migrations.Migration):
    dependencies = [
        ("recommender", "0015_export_file_in_store"),
    ]

    operations = [
        migrations.CreateModel(
            name="EventIngestDay",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("day", models.DateField(unique=True)),
                ("events", models.PositiveBigIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
