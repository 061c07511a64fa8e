from django.urls import path

from amplification import views

app_name = "amplification"
urlpatterns = [
    path("", views.tree_list, name="list"),
    path("new/", views.tree_new, name="new"),
    path("import/", views.tree_import, name="import"),
    path("distillation.jsonl", views.distillation_export, name="distill"),
    path("distillation/preview/", views.distillation_preview_page, name="distill_preview"),
    path("distil/", views.distil, name="distil"),
    path("iterations/", views.iteration_lines, name="iterations"),
    path("iterations/<int:pk>/", views.iteration_line, name="iteration_line"),
    path(
        "iterations/<int:pk>/<int:number>/distil/", views.iteration_distil, name="iteration_distil"
    ),
    path(
        "iterations/<int:pk>/<int:number>/evaluate/",
        views.iteration_evaluate,
        name="iteration_evaluate",
    ),
    path("iterations/<int:pk>/<int:number>/next/", views.iteration_next, name="iteration_next"),
    path(
        "iterations/<int:pk>/<int:number>/to-queue/",
        views.iteration_to_queue,
        name="iteration_to_queue",
    ),
    path("iterations/<int:pk>/<int:number>/judge/", views.iteration_judge, name="iteration_judge"),
    path("<int:pk>/", views.tree_detail, name="detail"),
    path("<int:pk>/export.json", views.tree_export_json, name="export"),
    path("<int:pk>/run/", views.tree_run, name="run"),
    path("<int:pk>/release-all/", views.tree_release_all, name="release_all"),
    path("<int:pk>/to-queue/", views.tree_to_queue, name="to_queue"),
    path("<int:pk>/nodes/<int:node_id>/question/", views.node_edit_question, name="edit_question"),
    path("<int:pk>/nodes/<int:node_id>/answer/", views.node_edit_answer, name="edit_answer"),
    path("<int:pk>/nodes/<int:node_id>/children/", views.node_add_child, name="add_child"),
    path("<int:pk>/nodes/<int:node_id>/remove/", views.node_remove, name="remove"),
    path("<int:pk>/nodes/<int:node_id>/rerun/", views.node_rerun, name="rerun"),
    path("<int:pk>/nodes/<int:node_id>/recompute/", views.node_recompute, name="recompute"),
    path("<int:pk>/nodes/<int:node_id>/retry/", views.node_retry, name="retry"),
    path("<int:pk>/nodes/<int:node_id>/take/", views.node_take, name="take"),
    path("<int:pk>/nodes/<int:node_id>/release/", views.node_release, name="release"),
    path("<int:pk>/nodes/<int:node_id>/person-answer/", views.node_answer, name="person_answer"),
    path("<int:pk>/nodes/<int:node_id>/decompose/", views.node_decompose, name="decompose"),
]
