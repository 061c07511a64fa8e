from django.urls import path

from llm.consumers import TrialConsumer

websocket_urlpatterns = [
    path("ws/llm/trials/<int:trial_id>/", TrialConsumer.as_asgi()),
]
