from django.urls import path

from rewards.consumers import TrainingConsumer

websocket_urlpatterns = [
    path("ws/reward-models/<int:reward_model_id>/", TrainingConsumer.as_asgi()),
]
