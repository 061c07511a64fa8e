from django.urls import path

from annotations.views import exports, labels, queues, tokens

app_name = "annotations"
urlpatterns = [
    # annotators
    path("", labels.my_queues, name="my_queues"),
    path("<int:pk>/label/", labels.label, name="label"),
    path("<int:pk>/label/submit/", labels.label_submit_view, name="submit"),
    path("<int:pk>/label/skip/", labels.skip, name="skip"),
    path("<int:pk>/label/undo/", labels.undo, name="undo"),
    # researchers
    path("manage/", queues.queue_admin, name="queue_admin"),
    path("manage/new/", queues.queue_create, name="queue_create"),
    path("<int:pk>/manage/", queues.queue_detail, name="queue_detail"),
    path("<int:pk>/import/", queues.queue_import, name="queue_import"),
]
urlpatterns += [
    path("exports/", exports.export_list, name="export_list"),
    path("exports/new/", exports.export_create, name="export_create"),
    path("exports/<int:pk>/", exports.export_detail, name="export_detail"),
    path("exports/<int:pk>/download/", exports.export_download, name="export_download"),
]
urlpatterns += [path("<int:pk>/dashboard/", queues.dashboard, name="dashboard")]
urlpatterns += [
    path("tokens/", tokens.tokens, name="tokens"),
    path("tokens/<int:pk>/revoke/", tokens.token_revoke, name="token_revoke"),
]
