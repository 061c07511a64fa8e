import time

import pytest

from llm.models import BUNDLED_CONFIG_NAME, ModelConfig

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def test_try_it_streams_tokens_into_the_page(
    live_asgi_server, celery_worker_process, page, researcher
):
    from tests.helpers import browser_login

    ModelConfig.objects.filter(name=BUNDLED_CONFIG_NAME).update(temperature=0, max_new_tokens=40)
    browser_login(page, live_asgi_server.url, "researcher")
    page.click("nav >> text=Models")
    page.click(f"text={BUNDLED_CONFIG_NAME}")
    page.fill("#try-form textarea[name=prompt]", "Count from one to twenty in words.")
    page.click("#try-form button[type=submit]")

    # One atomic read in the page: the socket replaces these elements while we look.
    read_output = """() => {
        const output = document.querySelector("#trials .trial .output");
        const done = !!document.querySelector("#trials [data-status=done]");
        return [output ? output.textContent : "", done];
    }"""
    lengths: list[int] = []
    deadline = time.monotonic() + 300
    while True:
        text, done = page.evaluate(read_output)
        if done:
            break
        assert time.monotonic() < deadline, "the completion did not finish"
        if text and (not lengths or len(text) != lengths[-1]):
            lengths.append(len(text))
        time.sleep(0.05)

    final = page.evaluate(read_output)[0]
    # The text grew in several steps before the completion was done: streamed, not dumped.
    assert len(lengths) >= 3, lengths
    assert lengths == sorted(lengths)
    assert final.strip() and len(final) >= lengths[-1]
    assert "tokens/s" in page.locator("#trials [data-status=done]").inner_text()
