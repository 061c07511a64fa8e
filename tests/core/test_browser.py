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


# Links a crawl must not follow: they change state, leave the app, or are not pages.
NOT_PAGES = ("/accounts/logout", "/admin/", "/api/", "/static/", "/healthz", "download")


def _pages_reachable(page, base, start, limit=60):
    """Every same-site page reachable by links from `start`, breadth first."""
    seen, todo = set(), [start]
    while todo and len(seen) < limit:
        path = todo.pop(0)
        if path in seen:
            continue
        seen.add(path)
        response = page.goto(f"{base}{path}")
        if response is None or "text/html" not in response.headers.get("content-type", ""):
            continue
        yield path
        hrefs = page.eval_on_selector_all(
            "a[href]", "links => links.map(a => a.getAttribute('href'))"
        )
        for href in hrefs:
            href = href.split("#")[0]
            if href.startswith("/") and not any(part in href for part in NOT_PAGES):
                todo.append(href)


def test_no_page_scrolls_sideways_on_a_phone(live_asgi_server, browser):
    call_command("seed_demo", password="demo-password-for-tests", verbosity=0)
    base = live_asgi_server.url
    wide = []
    visited = 0
    for username, (home, _) in HOMES.items():
        context = browser.new_context(viewport={"width": 390, "height": 844})
        page = context.new_page()
        page.goto(f"{base}/accounts/login/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", "demo-password-for-tests")
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}{home}")
        # The menu is folded on a phone, and opens from its button.
        assert not page.locator("#main-menu").is_visible()
        page.click(".menu-toggle")
        assert page.locator("#main-menu nav").is_visible()
        for path in _pages_reachable(page, base, home):
            visited += 1
            width = page.evaluate("document.documentElement.scrollWidth")
            if width > 390:
                wide.append(f"{username} {path}: {width} px")
        context.close()
    assert visited >= 15, visited
    assert wide == [], "\n".join(wide)


def test_an_admins_menu_is_one_line_at_1366_px_and_no_request_fails(live_asgi_server, browser):
    call_command("seed_demo", password="demo-password-for-tests", verbosity=0)
    base = live_asgi_server.url
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "demo-password-for-tests")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/operations/")
    tops = page.eval_on_selector_all("#main-menu nav a", "links => links.map(a => a.offsetTop)")
    assert len(tops) == 14 and len(set(tops)) == 1, tops
    icon = page.get_attribute("link[rel=icon]", "href")
    assert page.request.get(f"{base}{icon}").status == 200
    page.click("text=Django admin")
    page.wait_for_url(f"{base}/admin/")
    assert page.get_attribute("link[rel=icon]", "href") == icon
    page.wait_for_load_state("networkidle")
    assert failed == []  # no /favicon.ico 404 on our pages or the admin's
    context.close()
