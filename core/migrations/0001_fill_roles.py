from django.apps.registry import Apps
from django.contrib.auth.management import create_permissions
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

ROLES = ("annotator", "researcher", "admin")
# Admins manage users and roles through the Django admin.
ADMIN_PERMISSIONS = (
    ("auth", "user"),
    ("auth", "group"),
)


def fill_roles(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    # Permissions are normally created after all migrations; make the auth ones exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True  # type: ignore[assignment]
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for name in ROLES:
        group_model.objects.get_or_create(name=name)
    admin_group = group_model.objects.get(name="admin")
    for app_label, model in ADMIN_PERMISSIONS:
        admin_group.permissions.add(
            *permission_model.objects.filter(
                content_type__app_label=app_label, content_type__model=model
            )
        )


def empty_roles(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(fill_roles, empty_roles)]
