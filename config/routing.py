from amplification.routing import websocket_urlpatterns as amplification_websockets
from core.routing import websocket_urlpatterns as core_websockets
from debate.routing import websocket_urlpatterns as debate_websockets
from llm.routing import websocket_urlpatterns as llm_websockets

websocket_urlpatterns = [
    *core_websockets,
    *llm_websockets,
    *debate_websockets,
    *amplification_websockets,
]
