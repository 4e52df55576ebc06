from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0004_trainingrun_metrics_index"),
        ("recommender", "0011_recommender_algorithm_hyperparameters"),
    ]

    operations = [
        migrations.AddField(
            model_name="trainingrun",
            name="hyperparameters",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text=(
                    "What the run fits: the family and every hyper-parameter, resolved when "
                    "it was created (recommender.config_schema.run_hyperparameters)."
                ),
            ),
        ),
        migrations.AlterField(
            model_name="trainingrun",
            name="options",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="dry_run, no_promote, algorithm, hyper-parameter overrides.",
            ),
        ),
    ]
