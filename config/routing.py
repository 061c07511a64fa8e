from amplification.routing import websocket_urlpatterns as amplification_websockets
from debate.routing import websocket_urlpatterns as debate_websockets
from llm.routing import websocket_urlpatterns as llm_websockets
from rewards.routing import websocket_urlpatterns as rewards_websockets

websocket_urlpatterns = [
    *llm_websockets,
    *debate_websockets,
    *rewards_websockets,
    *amplification_websockets,
]
