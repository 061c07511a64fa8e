from django.urls import path

from llm import views

app_name = "llm"
urlpatterns = [
    path("", views.config_list, name="config_list"),
    path("new/", views.config_create, name="config_create"),
    path("<id:pk>/", views.config_detail, name="config_detail"),
    path("<id:pk>/try/", views.config_try, name="config_try"),
    path("training/", views.training_run_list, name="training_run_list"),
    path("training/<id:pk>/", views.training_run_detail, name="training_run_detail"),
]
