from django.urls import path

from experiments import views

app_name = "experiments"
urlpatterns = [
    # participants (the study link)
    path("join/<slug:slug>/", views.join, name="join"),
    path("join/<slug:slug>/consent/", views.consent, name="consent"),
    path("join/<slug:slug>/instructions/", views.instructions, name="instructions"),
    path("join/<slug:slug>/task/", views.task, name="task"),
    path("join/<slug:slug>/task/label/", views.task_label, name="task_label"),
    path("join/<slug:slug>/task/timeout/", views.task_timeout, name="task_timeout"),
    path("join/<slug:slug>/task/flag/", views.task_flag, name="task_flag"),
    path("join/<slug:slug>/task/release/", views.task_release, name="task_release"),
    path("join/<slug:slug>/done/", views.done, name="done"),
    # researchers
    path("experiments/", views.experiment_list, name="list"),
    path("experiments/<id:pk>/", views.experiment_detail, name="detail"),
    path("experiments/<id:pk>/link/", views.link_set, name="link"),
    path("experiments/<id:pk>/arms/<id:arm_pk>/generate/", views.generate, name="generate"),
    path("experiments/<id:pk>/jobs/", views.jobs_fragment, name="jobs"),
    path("experiments/<id:pk>/labels.<str:fmt>", views.labels_export, name="labels_export"),
    path("experiments/<id:pk>/participants.csv", views.participants_export, name="participants"),
]
