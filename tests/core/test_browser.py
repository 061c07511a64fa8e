import pytest
from django.core.management import call_command

pytestmark = pytest.mark.browser

HOMES = {
    "annotator1": ("/annotate/", "Your work"),
    "researcher": ("/research/", "Research"),
    "admin": ("/operations/", "Operations"),
}


def test_each_demo_role_logs_in_and_sees_its_home(live_asgi_server, page):
    call_command("seed_demo", password="demo-password-for-tests", verbosity=0)
    for username, (path, heading) in HOMES.items():
        page.goto(f"{live_asgi_server.url}/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", "demo-password-for-tests")
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_asgi_server.url}{path}")
        assert page.locator("h1").first.inner_text() == heading
        page.click("text=Sign out")
        page.wait_for_url(f"{live_asgi_server.url}/accounts/login/")


def test_wrong_password_keeps_the_user_out(live_asgi_server, page):
    call_command("seed_demo", password="demo-password-for-tests", verbosity=0)
    page.goto(f"{live_asgi_server.url}/operations/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    assert "correct username and password" in page.locator("[role=alert]").inner_text()
