from django.urls import path

from amplification.consumers import TreeConsumer

websocket_urlpatterns = [
    path("ws/trees/<int:tree_id>/", TreeConsumer.as_asgi()),
]
