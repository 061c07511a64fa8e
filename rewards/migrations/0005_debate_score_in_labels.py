from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("rewards", "0004_reward_model_readiness"),
    ]

    operations = [
        migrations.AddField(
            model_name="debatescore",
            name="correct_side",
            field=models.CharField(blank=True, max_length=1),
        ),
        migrations.AddField(
            model_name="debatescore",
            name="in_labels",
            field=models.CharField(
                blank=True,
                choices=[
                    ("train", "in its training labels"),
                    ("heldout", "in its held-out labels"),
                    ("none", "not in its labels"),
                ],
                max_length=8,
            ),
        ),
    ]
