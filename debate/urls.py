from django.urls import path

from debate import views
from debate.research import views as research

app_name = "debate"
urlpatterns = [
    path("", views.debate_list, name="list"),
    path("mine/", views.my_debates, name="mine"),
    path("new/", views.debate_new, name="new"),
    path("to-queue/", views.debates_to_queue_view, name="to_queue"),
    path("prompts/<str:protocol>/", views.prompts_edit, name="prompts"),
    path("analytics/", research.analytics, name="analytics"),
    path("import/", research.debates_import, name="import"),
    path("export.jsonl", research.debates_export, name="export"),
    path("banks/", research.banks, name="banks"),
    path("banks/<id:pk>/", research.bank_detail, name="bank"),
    path("batches/", research.batches, name="batches"),
    path("batches/new/", research.batch_new, name="batch_new"),
    path("batches/<id:pk>/", research.batch_detail, name="batch"),
    path("<id:pk>/", views.debate_detail, name="detail"),
    path("<id:pk>/prior/", views.debate_prior, name="prior"),
    path("<id:pk>/turn/", views.debate_turn, name="turn"),
    path("<id:pk>/speeches/<id:speech_id>/retry/", views.speech_retry_view, name="retry"),
]
