from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0003_trainingrun_enqueued_at"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="trainingrun",
            index=models.Index(
                fields=["recommender", "status", "finished_at"],
                include=("decision",),
                name="run_rec_status_finished_idx",
            ),
        ),
    ]
