from django.urls import path

from core import views

urlpatterns = [
    path("", views.home, name="home"),
    path("annotate/", views.annotator_home, name="annotator_home"),
    path("research/", views.researcher_home, name="researcher_home"),
    path("operations/", views.operations_home, name="operations_home"),
    path("operations/health/", views.operations_health, name="operations_health"),
    path("operations/jobs/retry/", views.operations_job_retry, name="operations_job_retry"),
    path("webhooks/", views.webhooks, name="webhooks"),
    path("webhooks/<int:pk>/", views.webhook_detail, name="webhook_detail"),
    path("webhooks/<int:pk>/enabled/", views.webhook_enabled, name="webhook_enabled"),
    path(
        "webhooks/<int:pk>/deliveries/<int:delivery_pk>/redeliver/",
        views.webhook_redeliver_view,
        name="webhook_redeliver",
    ),
    path("healthz", views.healthz, name="healthz"),
    # What browsers ask for on pages without a <link rel="icon"> (JSON, the API docs).
    path("favicon.ico", views.favicon, name="favicon"),
]
