import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("rewards", "0002_debate_score"),
    ]

    operations = [
        migrations.CreateModel(
            name="SplitGroup",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("group", models.CharField(max_length=80)),
                ("heldout", models.BooleanField()),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "reward_model",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="split_groups",
                        to="rewards.rewardmodel",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("reward_model", "group"), name="split_group_once"
                    )
                ],
            },
        ),
    ]
