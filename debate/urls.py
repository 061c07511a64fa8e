from django.urls import path

from debate import views

app_name = "debate"
urlpatterns = [
    path("", views.debate_list, name="list"),
    path("mine/", views.my_debates, name="mine"),
    path("new/", views.debate_new, name="new"),
    path("to-queue/", views.debates_to_queue_view, name="to_queue"),
    path("prompts/<str:protocol>/", views.prompts_edit, name="prompts"),
    path("<int:pk>/", views.debate_detail, name="detail"),
    path("<int:pk>/prior/", views.debate_prior, name="prior"),
    path("<int:pk>/turn/", views.debate_turn, name="turn"),
    path("<int:pk>/speeches/<int:speech_id>/retry/", views.speech_retry_view, name="retry"),
]
