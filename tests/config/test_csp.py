"""The Content-Security-Policy (config/settings.py, django-csp): every page carries it, and every
page works under it in Chromium with no violation logged, as each role. htmx runs under it
(no inline indicator <style>, no eval) and still swaps fragments and posts forms."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urlsplit

import pytest
from django.test import Client
from playwright.sync_api import Error as PlaywrightError

from annotations.models import Label
from core.webhooks import webhook_endpoint_create
from tests.factories import PASSWORD, UserFactory
from tests.helpers import (
    browser_login,
    fuzz_world,
    screenshots_at_both_widths,
    signed_in,
    wait_for,
)

SCREENSHOTS = Path(__file__).resolve().parent.parent.parent / "var" / "screenshots" / "csp"

# Links a crawl must not follow: they act (sign out), download, or lead off the pages.
SKIP = ("/accounts/logout", "/static/", "/media/", "/api/", "/favicon.ico", "/healthz")
SKIP_SUFFIXES = ("/download/", "/download", ".jsonl", ".csv", ".parquet", ".zip")
MAX_PAGES_PER_ROLE = 45


def test_every_page_sends_the_policy(db: None, researcher: Any) -> None:
    for client, path in ((Client(), "/accounts/login/"), (signed_in(researcher), "/research/")):
        policy = client.get(path)["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-eval" not in policy
        assert "script-src 'self' 'unsafe-inline'" not in policy
    assert "script-src 'self'" in Client().get("/api/docs")["Content-Security-Policy"]


def _watch(page: Any) -> list[str]:
    """Every CSP violation the page reports, from the console and the DOM event."""
    seen: list[str] = []
    page.on(
        "console",
        lambda message: (
            seen.append(message.text)
            if "Content Security Policy" in message.text
            or "Content-Security-Policy" in message.text
            else None
        ),
    )
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e =>"
        " console.error('Content Security Policy violation: ' + e.violatedDirective"
        " + ' ' + e.blockedURI))"
    )
    return seen


def _crawl(page: Any, base: str, start: list[str]) -> list[str]:
    """Visit pages reachable by links from `start` (same origin, GET), breadth first."""
    queue, visited = deque(start), list[str]()
    seen = set(start)
    while queue and len(visited) < MAX_PAGES_PER_ROLE:
        path = queue.popleft()
        # Not "load": a page that streams (websockets, polling) need not settle for this.
        try:
            response = page.goto(base + path, wait_until="domcontentloaded", timeout=60_000)
        except PlaywrightError as error:
            if "Download is starting" in str(error):
                continue  # a file, not a page
            raise
        if response is None or "text/html" not in (response.headers.get("content-type") or ""):
            continue
        visited.append(path)
        page.wait_for_timeout(300)  # deferred scripts and htmx's load triggers run
        for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)"):
            parts = urlsplit(urldefrag(href)[0])
            link = parts.path + (f"?{parts.query}" if parts.query else "")
            if f"{parts.scheme}://{parts.netloc}" != base or link in seen:
                continue
            if link.startswith(SKIP) or parts.path.endswith(SKIP_SUFFIXES):
                continue
            seen.add(link)
            queue.append(link)
    return visited


@pytest.mark.parametrize("role", ["annotator", "researcher", "admin"])
def test_every_page_works_under_the_policy_with_no_violation(
    live_asgi_server: Any, page: Any, users: dict[str, Any], role: str
) -> None:
    world = fuzz_world(users)
    webhook_endpoint_create(
        owner=users["researcher"], name="lab", url="https://receiver.example.org/hook",
        events=["label.created"], own_hosts=[],
    )  # fmt: skip
    user = users[role]
    if role == "admin":
        user.is_superuser = True
        user.save()
    base = live_asgi_server.url
    violations = _watch(page)
    browser_login(page, base, user.username)
    start = {
        "annotator": ["/annotate/", f"/queues/{world.ids['queue_id']}/label/"],
        "researcher": ["/research/", "/webhooks/"],
        "admin": ["/operations/", "/admin/", "/admin/core/webhookendpoint/", "/api/docs"],
    }[role]
    visited = _crawl(page, base, start)
    assert len(visited) >= 5, visited
    assert not violations, f"CSP violations as {role}: {violations[:5]} (pages: {visited})"


def test_htmx_swaps_and_posts_under_the_policy(
    live_asgi_server: Any, page: Any, users: dict[str, Any]
) -> None:
    world = fuzz_world(users)
    base = live_asgi_server.url
    violations = _watch(page)
    admin = users["admin"]
    browser_login(page, base, admin.username)
    page.goto(f"{base}/operations/")
    # hx-trigger="load": the health fragment arrives by an htmx GET.
    page.wait_for_function("document.querySelector('#health').children.length > 0")
    assert page.evaluate("document.querySelectorAll('style').length") == 0
    assert page.evaluate("htmx.config.allowEval") is False
    page.context.clear_cookies()
    browser_login(page, base, users["annotator"].username, PASSWORD)
    page.goto(f"{base}/queues/{world.ids['queue_id']}/label/")
    before = Label.objects.count()
    # The label goes by queue.js's fetch (connect-src 'self'), then the undo by an htmx POST.
    page.locator("#work form[data-held] button[type=submit]").first.click()
    wait_for(lambda: Label.objects.count() == before + 1, timeout=15, what="the label's fetch")
    page.goto(f"{base}/queues/{world.ids['queue_id']}/label/")
    page.locator("#work form.undo[hx-post] button[type=submit]").click()
    wait_for(lambda: Label.objects.count() == before, timeout=15, what="the htmx undo")
    page.wait_for_selector("#work")
    assert not violations, violations


def test_the_webhooks_pages_fit_both_widths(
    live_asgi_server: Any, page: Any, researcher: Any
) -> None:
    endpoint = webhook_endpoint_create(
        owner=researcher, name="a lab receiver with a long name",
        url="https://receiver.example.org/a/very/long/path/that/goes/on/and/on/hook?token=abc",
        events=["label.created", "export.finished"], own_hosts=[],
    )  # fmt: skip
    UserFactory(username="someone")
    base = live_asgi_server.url
    browser_login(page, base, researcher.username)
    page.goto(f"{base}/webhooks/")
    screenshots_at_both_widths(page, SCREENSHOTS, "webhooks")
    page.goto(f"{base}/webhooks/{endpoint.pk}/")
    screenshots_at_both_widths(page, SCREENSHOTS, "webhook-detail")
