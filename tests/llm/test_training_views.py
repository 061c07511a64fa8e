"""The training-run pages and the lineage on the model pages."""

from __future__ import annotations

from django.urls import reverse

from llm.models import ModelConfig, TrainingKind, TrainingRun, TrainingStatus
from llm.schemas import CurvePoint, Curves
from tests.helpers import signed_in
from tests.llm.training_data import bundled_config


def finished_run(parent: ModelConfig) -> TrainingRun:
    result = ModelConfig.objects.create(name="child <b>", model="/tmp/run-1")
    curves = Curves(train=[CurvePoint(step=1, loss=2.0), CurvePoint(step=2, loss=1.5)],
                    eval=[CurvePoint(step=0, loss=2.2), CurvePoint(step=2, loss=1.6)])  # fmt: skip
    return TrainingRun.objects.create(
        kind=TrainingKind.SFT_DISTIL, name="child <b>", parent=parent, status=TrainingStatus.DONE,
        source="amplification distillation set: every finished tree", row_count=40,
        train_rows=36, eval_rows=4, dataset_hash="ab" * 32, hyperparameters={},
        curves=curves.model_dump(), eval_loss_before=2.2, eval_loss_after=1.6, result=result,
        progress_step=2, progress_total=2,
    )  # fmt: skip


def test_the_run_page_shows_progress_losses_and_lineage(db, researcher):
    run = finished_run(bundled_config())
    client = signed_in(researcher)
    page = client.get(reverse("llm:training_run_detail", kwargs={"pk": run.pk})).content.decode()
    assert 'style="width: 100%"' in page and "2.2000" in page and "1.6000" in page
    assert 'data-series="train"' in page and "child &lt;b&gt;" in page and "<b>" not in page
    assert "36 trained on, 4 held out" in page and 'hx-trigger="every 2s"' not in page
    fragment = client.get(reverse("llm:training_run_detail", kwargs={"pk": run.pk}),
                          HTTP_HX_REQUEST="true").content.decode()  # fmt: skip
    assert fragment.lstrip().startswith('<section class="card" id="run-live"')


def test_a_running_run_polls_and_the_lists_show_where_configs_came_from(db, researcher):
    parent = bundled_config()
    run = finished_run(parent)
    TrainingRun.objects.filter(pk=run.pk).update(status=TrainingStatus.RUNNING, progress_step=1)
    client = signed_in(researcher)
    page = client.get(reverse("llm:training_run_detail", kwargs={"pk": run.pk})).content.decode()
    assert 'hx-trigger="every 2s"' in page and 'style="width: 50%"' in page
    models = client.get(reverse("llm:config_list")).content.decode()
    assert "SFT on a distillation set</a> of" in models and "on 40 rows" in models
    detail = client.get(reverse("llm:config_detail", kwargs={"pk": run.result_id})).content
    assert b"came from" in detail and b"ababababab" in detail
    parent_page = client.get(reverse("llm:config_detail", kwargs={"pk": parent.pk})).content
    assert b"Trained from this config" in parent_page and b"Configured by hand" in parent_page
    runs = client.get(reverse("llm:training_run_list")).content.decode()
    assert "2.200 → 1.600" in runs


def test_only_researchers_and_only_get(db, annotator, researcher):
    run = finished_run(bundled_config())
    url = reverse("llm:training_run_detail", kwargs={"pk": run.pk})
    assert signed_in(annotator).get(url).status_code == 403
    assert signed_in(annotator).get(reverse("llm:training_run_list")).status_code == 403
    assert signed_in(researcher).post(url).status_code == 405
    missing = reverse("llm:training_run_detail", kwargs={"pk": run.pk + 1})
    assert signed_in(researcher).get(missing).status_code == 404


def test_the_admin_shows_a_run_read_only_without_its_rows(db, admin_user):
    admin_user.is_superuser = True
    admin_user.save()
    run = finished_run(bundled_config())
    TrainingRun.objects.filter(pk=run.pk).update(rows=[{"prompt": "secret row", "completion": "c"}])
    page = signed_in(admin_user).get(reverse("admin:llm_trainingrun_change", args=[run.pk]))
    assert page.status_code == 200
    assert b"ababab" in page.content and b"secret row" not in page.content
    assert b'name="name"' not in page.content  # read-only
