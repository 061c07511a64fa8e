from core.routing import websocket_urlpatterns as core_websockets
from llm.routing import websocket_urlpatterns as llm_websockets

websocket_urlpatterns = [*core_websockets, *llm_websockets]
