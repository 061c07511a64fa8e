"""The URLconf of the API handler (config/api_asgi.py): only /api/, and errors as JSON.

The pages' URLconf (config/urls.py) includes the same API, so pages can link to it.
"""

from django.http import HttpRequest, JsonResponse
from django.urls import path

from config.api import api

urlpatterns = [path("api/", api.urls)]


def handler404(request: HttpRequest, exception: Exception) -> JsonResponse:
    return JsonResponse({"detail": "Not found."}, status=404)


def handler500(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"detail": "Internal server error."}, status=500)
