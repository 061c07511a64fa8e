import re

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from tests.helpers import signed_in

pytestmark = pytest.mark.django_db

OUR_APPS = {"core", "llm", "debate", "amplification", "annotations", "rewards"}
OUR_MODELS = [m for m in apps.get_models() if m._meta.app_label in OUR_APPS]
# "entrys", "speechs", "batchs", "classs", "boxs": a plural made by adding an s.
NAIVE_PLURAL = re.compile(r"([^aeiou]ys|chs|shs|ss|xs)$")


def test_every_model_has_an_admin_with_an_english_plural():
    assert OUR_MODELS
    missing = [m._meta.label for m in OUR_MODELS if m not in admin.site._registry]
    assert missing == []
    naive = [str(m._meta.verbose_name_plural) for m in OUR_MODELS]
    assert [name for name in naive if NAIVE_PLURAL.search(name)] == []


@pytest.mark.parametrize("model", OUR_MODELS, ids=lambda m: m._meta.label)
def test_every_admin_list_opens_and_searches(model, admin_user):
    admin_user.is_superuser = True
    admin_user.save()
    client = signed_in(admin_user)
    name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
    assert client.get(reverse(f"{name}_changelist")).status_code == 200
    assert client.get(reverse(f"{name}_changelist"), {"q": "7"}).status_code == 200
    add = client.get(reverse(f"{name}_add"))
    assert add.status_code in (200, 403)
