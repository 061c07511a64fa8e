from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("rewards", "0003_split_groups"),
    ]

    operations = [
        migrations.AddField(
            model_name="rewardmodel",
            name="readiness",
            field=models.JSONField(blank=True, default=dict, editable=False),
        ),
    ]
