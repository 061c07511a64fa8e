import re

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from tests.helpers import signed_in

pytestmark = pytest.mark.django_db

OUR_APPS = {
    "core", "llm", "debate", "amplification", "annotations", "rewards", "feedback", "experiments",
}  # fmt: skip
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


# Tables an admin may fill in by hand (configuration); every other table of ours is written by
# a service, which creates a row with what it needs, so its admin offers no "+ Add".
ADDABLE = {"llm.ModelConfig", "annotations.Queue", "annotations.QueueMember", "rewards.RewardModel",
           "core.WebhookEndpoint"}  # fmt: skip


def test_only_configuration_tables_offer_add(admin_user, rf):
    admin_user.is_superuser = True
    admin_user.save()
    client = signed_in(admin_user)
    index = client.get(reverse("admin:index")).content.decode()
    for model in OUR_MODELS:
        name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        add_url = reverse(f"{name}_add")
        changelist = client.get(reverse(f"{name}_changelist")).content.decode()
        if model._meta.label in ADDABLE:
            assert client.get(add_url).status_code == 200, model._meta.label
            assert f'href="{add_url}"' in index and f'href="{add_url}"' in changelist
        else:
            assert client.get(add_url).status_code == 403, model._meta.label
            assert add_url not in index and add_url not in changelist, model._meta.label
    assert {m._meta.label for m in OUR_MODELS} >= ADDABLE  # no stale name in the list


def test_no_inline_of_service_written_rows_offers_add_another(admin_user, rf):
    request = rf.get("/admin/")
    request.user = admin_user
    admin_user.is_superuser = True
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in OUR_APPS:
            continue
        for inline in model_admin.get_inline_instances(request):
            addable = inline.model._meta.label in ADDABLE
            assert inline.has_add_permission(request, None) is addable, inline


def test_admin_pages_carry_the_icon(admin_user, client):
    assert 'rel="icon"' in client.get(reverse("admin:login")).content.decode()
    admin_user.is_superuser = True
    admin_user.save()
    signed = signed_in(admin_user)
    for url in (reverse("admin:index"), reverse("admin:debate_debate_changelist"),
                reverse("admin:llm_modelconfig_add")):  # fmt: skip
        assert '<link rel="icon" href="/static/favicon.svg">' in signed.get(url).content.decode()
    icon = client.get("/favicon.ico")
    assert (icon.status_code, icon["Location"]) == (301, "/static/favicon.svg")
