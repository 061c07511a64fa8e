from django.urls import path

from rewards import views

app_name = "rewards"
urlpatterns = [
    path("", views.model_list, name="list"),
    path("new/", views.model_create, name="create"),
    path("<int:pk>/", views.model_detail, name="detail"),
    path("<int:pk>/edit/", views.model_edit, name="edit"),
    path("<int:pk>/retrain/", views.retrain, name="retrain"),
    path("<int:pk>/versions/<int:number>/rollback/", views.rollback, name="rollback"),
    path("<int:pk>/versions/<int:number>/checkpoint/", views.checkpoint, name="checkpoint"),
    path("policy-runs/new/", views.policy_run_create, name="policy_run_create"),
    path("policy-runs/<int:run_pk>/evaluation/", views.policy_eval, name="policy_eval"),
    path("experiments/", views.experiment_list, name="experiments"),
    path("experiments/new/", views.experiment_create, name="experiment_create"),
    path("experiments/<int:pk>/", views.experiment_detail, name="experiment"),
    path("experiments/<int:pk>/export.csv", views.experiment_export, name="experiment_export"),
    path(
        "experiments/<int:pk>/human-gold.csv",
        views.experiment_human_export,
        name="experiment_human_export",
    ),  # fmt: skip
]
