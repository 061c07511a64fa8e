from django.urls import path

from llm import views

app_name = "llm"
urlpatterns = [
    path("", views.config_list, name="config_list"),
    path("new/", views.config_create, name="config_create"),
    path("<int:pk>/", views.config_detail, name="config_detail"),
    path("<int:pk>/try/", views.config_try, name="config_try"),
]
