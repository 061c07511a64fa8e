from django.urls import path

from feedback import views

app_name = "feedback"
urlpatterns = [
    path("", views.home, name="home"),
    path("constitutions/new/", views.constitution_new, name="constitution_new"),
    path("constitutions/<id:pk>/", views.constitution_detail, name="constitution_detail"),
    path("annotators/new/", views.annotator_new, name="annotator_new"),
    path("annotators/<id:pk>/", views.annotator_detail, name="annotator_detail"),
    path("annotators/<id:pk>/run/", views.run_start, name="run_start"),
    path("runs/<id:pk>/", views.run_detail, name="run_detail"),
    path("runs/<id:pk>/route/", views.run_route, name="run_route"),
]
