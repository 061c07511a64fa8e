from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("llm", "0007_training_run"),
    ]

    operations = [
        migrations.AddField(
            model_name="trainingrun",
            name="report",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
