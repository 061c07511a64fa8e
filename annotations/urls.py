from django.urls import path

from annotations import preview_views, research_views, token_views, views

app_name = "annotations"
urlpatterns = [
    # annotators
    path("", views.my_queues, name="my_queues"),
    path("<int:pk>/label/", views.label, name="label"),
    path("<int:pk>/label/submit/", views.label_submit_view, name="submit"),
    path("<int:pk>/label/skip/", views.skip, name="skip"),
    path("<int:pk>/label/undo/", views.undo, name="undo"),
    # researchers
    path("manage/", research_views.queue_admin, name="queue_admin"),
    path("manage/new/", research_views.queue_create, name="queue_create"),
    path("<int:pk>/manage/", research_views.queue_detail, name="queue_detail"),
    path("<int:pk>/import/", research_views.queue_import, name="queue_import"),
]
urlpatterns += [
    path("exports/", research_views.export_list, name="export_list"),
    path("exports/new/", research_views.export_create, name="export_create"),
    path("exports/<int:pk>/", research_views.export_detail, name="export_detail"),
    path("exports/<int:pk>/download/", research_views.export_download, name="export_download"),
]
urlpatterns += [
    path("<int:pk>/dashboard/", research_views.dashboard, name="dashboard"),
    path("<int:pk>/preview/", preview_views.preview, name="preview"),
]
urlpatterns += [
    path("tokens/", token_views.tokens, name="tokens"),
    path("tokens/<int:pk>/revoke/", token_views.token_revoke, name="token_revoke"),
]
