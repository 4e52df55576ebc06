"""Model families (issue 15): ``Recommender.algorithm`` and ``hyperparameters`` (per
family, ``recommender.families``). The LightFM columns move into
``hyperparameters["lightfm"]`` and are dropped; ``num_threads`` and ``random_seed`` stay
columns (every family is fitted with them)."""

from django.db import migrations, models

LIGHTFM_COLUMNS = ("no_components", "loss", "learning_rate", "epochs", "item_alpha", "user_alpha")


def columns_to_json(apps, schema_editor):
    Recommender = apps.get_model("recommender", "Recommender")
    for recommender in Recommender.objects.all():
        lightfm = {name: getattr(recommender, name) for name in LIGHTFM_COLUMNS}
        recommender.hyperparameters = {"lightfm": lightfm}
        recommender.save(update_fields=["hyperparameters"])


def json_to_columns(apps, schema_editor):
    Recommender = apps.get_model("recommender", "Recommender")
    for recommender in Recommender.objects.all():
        for name, value in (recommender.hyperparameters or {}).get("lightfm", {}).items():
            setattr(recommender, name, value)
        recommender.save(update_fields=list(LIGHTFM_COLUMNS))


class Migration(migrations.Migration):
    dependencies = [("recommender", "0010_online")]

    operations = [
        migrations.AddField(
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
                    ("auto", "Automatic: search the families (not available yet)"),
                ],
                default="lightfm",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="recommender",
            name="hyperparameters",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text=(
                    'Per family, the values that differ from its defaults, e.g. {"ease": '
                    '{"lambda": 500}}; the admin form edits them one field per parameter.'
                ),
            ),
        ),
        migrations.RunPython(columns_to_json, json_to_columns),
        *(migrations.RemoveField(model_name="recommender", name=name) for name in LIGHTFM_COLUMNS),
    ]
