"""The ``auto`` algorithm (issue 15): ``Recommender.tuning_budget_seconds`` and ``auto``
as the default algorithm. The ``default`` recommender of an install that has not trained
yet (no model version) was created without anyone choosing a family, so it becomes
``auto`` too; one that has versions keeps its family."""

from django.db import migrations, models


def fresh_default_to_auto(apps, schema_editor):
    Recommender = apps.get_model("recommender", "Recommender")
    Recommender.objects.filter(name="default", versions__isnull=True).update(algorithm="auto")


class Migration(migrations.Migration):
    dependencies = [("recommender", "0013_export_job")]

    operations = [
        migrations.AddField(
            model_name="recommender",
            name="tuning_budget_seconds",
            field=models.PositiveIntegerField(
                default=10,
                help_text=(
                    "Seconds the auto algorithm searches the families and their "
                    "hyper-parameters (kept within 10 %); the refit of the winner comes on top."
                ),
            ),
        ),
        migrations.AlterField(
            model_name="recommender",
            name="algorithm",
            field=models.CharField(
                choices=[
                    ("lightfm", "LightFM: hybrid factors with item / user features"),
                    ("ease", "EASE: closed-form item-item (dense inverse; bounded item count)"),
                    ("itemknn", "ItemKNN: top-k cosine or BM25 neighbours"),
                    ("als", "ALS: implicit-feedback matrix factorisation"),
                    ("svd", "PureSVD: truncated SVD of the interactions"),
                    ("popularity", "Popularity, optionally decayed by age"),
                    (
                        "auto",
                        "Automatic: search the families and their hyper-parameters in a "
                        "time budget",
                    ),
                ],
                default="auto",
                max_length=16,
            ),
        ),
        migrations.RunPython(fresh_default_to_auto, migrations.RunPython.noop),
    ]
