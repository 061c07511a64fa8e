from django.conf import settings
from django.test import Client

from tests.factories import PASSWORD

# The Origin a browser on the app's own host sends; AllowedHostsOriginValidator checks it.
ORIGIN = (b"origin", b"http://127.0.0.1")


def signed_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def session_cookie(user) -> bytes:
    """A Cookie header value that authenticates a websocket as `user`."""
    name = settings.SESSION_COOKIE_NAME
    return f"{name}={signed_in(user).cookies[name].value}".encode()


def browser_login(page, base_url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
