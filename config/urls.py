from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from config.api import api

admin.site.site_header = "Arbiter administration"
admin.site.site_title = "Arbiter admin"

urlpatterns = [
    path("", include("core.urls")),
    path("models/", include("llm.urls")),
    path("debates/", include("debate.urls")),
    path("queues/", include("annotations.urls")),
    path("reward-models/", include("rewards.urls")),
    path("trees/", include("amplification.urls")),
    path("ai-feedback/", include("feedback.urls")),
    path("", include("experiments.urls")),
    path("api/", api.urls),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
