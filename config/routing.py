from core.routing import websocket_urlpatterns as core_websockets

websocket_urlpatterns = [*core_websockets]
