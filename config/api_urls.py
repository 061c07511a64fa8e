"""The URLconf of the API handler (config/api_asgi.py): only /api/, and errors as JSON.

The pages' URLconf (config/urls.py) includes the same API, so pages can link to it.
"""

from django.http import HttpRequest, JsonResponse
from django.urls import path

from config.api import api
from config.api_contract import problem_body

urlpatterns = [path("api/", api.urls)]


# Django's own refusals under /api/, in the API's one error shape (config/api.py's Problem).
def handler400(request: HttpRequest, exception: Exception) -> JsonResponse:
    return JsonResponse(problem_body("Bad request."), status=400)


def handler403(request: HttpRequest, exception: Exception) -> JsonResponse:
    return JsonResponse(problem_body("Forbidden."), status=403)


def handler404(request: HttpRequest, exception: Exception) -> JsonResponse:
    return JsonResponse(problem_body("Not found."), status=404)


def handler500(request: HttpRequest) -> JsonResponse:
    return JsonResponse(problem_body("Internal server error."), status=500)
