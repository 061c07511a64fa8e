"""One ASGI application: Django over HTTP, Channels consumers over websockets.

Websocket routes come from each streaming app's routing module; the session cookie
authenticates the socket exactly as it does a page.
"""

import os
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)  # as get_asgi_application() does

# Imported after Django is set up: routing pulls in consumers, which import models.
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from config.api_asgi import ApiHandler, PageHandler  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402

django_asgi_app = PageHandler()
api_app = ApiHandler()


async def http_app(scope: dict, receive: Any, send: Any) -> None:
    """/api/ (see config/urls.py) goes to the API's one-hop handler, the rest to Django's."""
    path = scope["path"].removeprefix(scope.get("root_path", ""))
    app = api_app if path.startswith("/api/") else django_asgi_app
    await app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
