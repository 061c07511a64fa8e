from django.urls import path

from annotations.views import exports, labels, preview, queues, tokens

app_name = "annotations"
urlpatterns = [
    # annotators
    path("", labels.my_queues, name="my_queues"),
    path("<id:pk>/label/", labels.label, name="label"),
    path("<id:pk>/label/submit/", labels.label_submit_view, name="submit"),
    path("<id:pk>/label/skip/", labels.skip, name="skip"),
    path("<id:pk>/label/undo/", labels.undo, name="undo"),
    path("<id:pk>/label/release/", labels.release, name="release"),
    # researchers
    path("manage/", queues.queue_admin, name="queue_admin"),
    path("manage/new/", queues.queue_create, name="queue_create"),
    path("<id:pk>/manage/", queues.queue_detail, name="queue_detail"),
    path("<id:pk>/import/", queues.queue_import, name="queue_import"),
]
urlpatterns += [
    path("exports/", exports.export_list, name="export_list"),
    path("exports/new/", exports.export_create, name="export_create"),
    path("exports/<id:pk>/", exports.export_detail, name="export_detail"),
    path("exports/<id:pk>/download/", exports.export_download, name="export_download"),
]
urlpatterns += [
    path("<id:pk>/dashboard/", queues.dashboard, name="dashboard"),
    path("<id:pk>/preview/", preview.preview, name="preview"),
]
urlpatterns += [
    path("tokens/", tokens.tokens, name="tokens"),
    path("tokens/<id:pk>/revoke/", tokens.token_revoke, name="token_revoke"),
]
