"""Before external ids become unique per queue: a repeated one (a file imported twice) keeps
its first item, and each later item's id gets `#<item id>` appended, so nothing is lost."""

from django.db import migrations
from django.db.models import Count


def fill(apps, schema_editor):
    Item = apps.get_model("annotations", "Item")
    repeated = (
        Item.objects.exclude(external_id="")
        .values("queue_id", "external_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    for group in repeated.iterator():
        items = Item.objects.filter(
            queue_id=group["queue_id"], external_id=group["external_id"]
        ).order_by("id")
        for item in list(items)[1:]:
            item.external_id = f"{item.external_id}#{item.pk}"[-200:]
            item.save(update_fields=["external_id"])


class Migration(migrations.Migration):
    dependencies = [("annotations", "0004_job_heartbeat")]

    # Reversing keeps the renamed ids: the duplicates cannot be told apart again.
    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
