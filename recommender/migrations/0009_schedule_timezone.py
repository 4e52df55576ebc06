"""A recommender's schedule gets a time zone. Existing crons were written in UTC, so
existing rows get "UTC" whatever RECSITE_SCHEDULE_TIMEZONE says; new recommenders get the
setting (the field's default)."""

from django.db import migrations, models

import recommender.models

HELP = (
    "The IANA time zone the cron is read in, e.g. Europe/London, America/New_York, "
    "Asia/Colombo, UTC. Daylight saving: a time that does not exist on the day the clocks "
    "go forward runs that much later (02:30 -> 03:30); a time that occurs twice when they "
    "go back runs once, the first time."
)


class Migration(migrations.Migration):
    dependencies = [
        ("recommender", "0008_recommender_champion_no_overlap_policy"),
    ]

    operations = [
        migrations.AddField(
            model_name="recommender",
            name="schedule_timezone",
            field=models.CharField(default="UTC", help_text=HELP, max_length=64),
        ),
        migrations.AlterField(
            model_name="recommender",
            name="schedule_timezone",
            field=models.CharField(
                default=recommender.models.default_schedule_timezone,
                help_text=HELP,
                max_length=64,
            ),
        ),
        migrations.AlterField(
            model_name="recommender",
            name="schedule_cron",
            field=models.CharField(
                blank=True,
                default="",
                help_text='Cron expression in the schedule\'s time zone, e.g. "30 18 * * *" '
                "(daily at 18:30); empty = no schedule.",
                max_length=100,
                validators=[recommender.models.validate_schedule_cron],
            ),
        ),
    ]
