"""Events are unique per (client, event_id) instead of event_id alone; existing rows get
the client "operator" (what import_dataset and the demo data use, so re-running an import
after the upgrade stays idempotent). Adds DataErasure, the audit trail of deletions.

Adding the column with a constant default does not rewrite the table (PostgreSQL >= 11).
On PostgreSQL the new unique index is built CONCURRENTLY and attached as the constraint,
then the old constraint is dropped, so ingestion keeps writing while a large table is
indexed and uniqueness holds throughout (hence ``atomic = False``)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

OLD = models.UniqueConstraint(fields=["event_id"], name="event_event_id_unique")
NEW = models.UniqueConstraint(fields=["event_id", "client"], name="event_client_event_id_unique")


class SwapUniqueConstraint(migrations.operations.base.Operation):
    """Replace OLD by NEW. PostgreSQL: the index CONCURRENTLY, attached as the constraint,
    then OLD dropped. SQLite rebuilds the table from the new state (NEW only)."""

    reversible = True

    def state_forwards(self, app_label, state):
        state.remove_constraint(app_label, "event", OLD.name)
        state.add_constraint(app_label, "event", NEW)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, "event")
        if schema_editor.connection.vendor == "postgresql":
            table = schema_editor.quote_name(model._meta.db_table)
            name = schema_editor.quote_name(NEW.name)
            schema_editor.execute(
                f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {name} "
                f'ON {table} ("event_id", "client")'
            )
            schema_editor.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT {name} UNIQUE USING INDEX {name}"
            )
            schema_editor.remove_constraint(model, OLD)
        else:
            schema_editor.add_constraint(model, NEW)
            if schema_editor.connection.vendor != "sqlite":
                schema_editor.remove_constraint(model, OLD)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, "event")
        schema_editor.add_constraint(model, OLD)
        if schema_editor.connection.vendor != "sqlite":
            schema_editor.remove_constraint(model, NEW)

    def describe(self):
        return "Events unique per (event_id, client) instead of event_id"


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("recommender", "0006_event_user_time_item_idx"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="DataErasure",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("user", "A user's events and profile"),
                            ("events", "Events"),
                            ("items", "Items and their events"),
                        ],
                        max_length=8,
                    ),
                ),
                (
                    "subject",
                    models.CharField(
                        blank=True,
                        default="",
                        help_text="The user id of a user erasure.",
                        max_length=255,
                    ),
                ),
                ("events_deleted", models.PositiveBigIntegerField(default=0)),
                ("items_deleted", models.PositiveIntegerField(default=0)),
                ("profiles_deleted", models.PositiveIntegerField(default=0)),
                (
                    "detail",
                    models.JSONField(
                        blank=True,
                        default=dict,
                        help_text="What was selected, e.g. the first item ids.",
                    ),
                ),
                (
                    "actor_label",
                    models.CharField(
                        blank=True,
                        default="",
                        help_text='e.g. "admin:alice", "api-key:<prefix>".',
                        max_length=200,
                    ),
                ),
                ("reason", models.TextField(blank=True, default="")),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
            ],
            options={
                "ordering": ["-created_at", "-id"],
            },
        ),
        migrations.AddField(
            model_name="dataerasure",
            name="actor",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="event",
            name="client",
            field=models.CharField(
                default="operator",
                help_text='Who sent it: "api:<key name>", or "operator" (imports, demo data).',
                max_length=64,
            ),
        ),
        migrations.AlterField(
            model_name="event",
            name="event_id",
            field=models.CharField(
                help_text="The client's id; unique per client, makes ingestion idempotent.",
                max_length=255,
            ),
        ),
        SwapUniqueConstraint(),
    ]
