"""Done when: four participants join through study links, two per arm; they label with and
without critiques; one lets an item time out; all get completion codes; the analysis page
shows per-arm accuracy and the difference with its interval, which this test computes again
on its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.stats import Share
from experiments.assistance import assistance_job_run
from experiments.models import AssistanceFlag, AssistanceJob, Participant, Response
from tests.experiments.conftest import GOLD, make_experiment
from tests.factories import PASSWORD
from tests.helpers import browser_login, screenshots_at_both_widths

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots" / "experiments"
LIMIT_S = 10
KEY_CHOICE = {"1": "a", "2": "b"}
# Per arm position: the keys each of its two participants presses for items 0–3; None lets
# the item time out.
PLANS = {0: [[None, "2", "1", "2"], ["1", "1", "1", "1"]], 1: [["1", "2", "1", "2"],
         ["2", "2", "1", "1"]]}  # fmt: skip


def _expected(position):
    right = counted = 0
    for plan in PLANS[position]:
        for key, gold in zip(plan, GOLD, strict=True):
            if key is not None:
                counted += 1
                right += KEY_CHOICE[key] == gold
    return Share(right, counted)


def _open_study_link(browser, url, experiment, pid, number):
    """A participant's own browser context on the experiment's study link, at the consent
    page, recording the body of every POST the page sends."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.post_data or "") if r.method == "POST" else None)
    page.goto(f"{url}/join/{experiment.slug}/?PROLIFIC_PID={pid}&STUDY_ID=st&SESSION_ID=se{number}")
    return context, page, posted


def test_four_participants_two_per_arm_one_time_out_and_the_analysis(
    live_asgi_server, browser, researcher, monkeypatch
):
    from tests.experiments.conftest import FakeBackend

    monkeypatch.setattr("experiments.assistance.backend_for", lambda config: FakeBackend())
    experiment = make_experiment(researcher=researcher, time_limit_s=LIMIT_S, seed=99)
    helped_arm = experiment.arms.get(position=1)
    job = AssistanceJob.objects.create(arm=helped_arm, items_total=4)
    assistance_job_run(job_id=job.pk)
    url = live_asgi_server.url
    used = {0: 0, 1: 0}
    for number in range(4):
        context, page, posted = _open_study_link(browser, url, experiment, f"pid{number}", number)
        if number == 0:
            screenshots_at_both_widths(page, SHOTS, "consent")
        page.check("input[name=agree]")
        page.click("button:has-text('Continue')")
        page.click("text=Start")
        person = Participant.objects.get(experiment=experiment, external_id=f"pid{number}")
        position = person.arm.position
        plan = PLANS[position][used[position]]
        used[position] += 1
        page.wait_for_selector("#work[data-ready]")
        html = page.content()
        assert "Control arm" not in html and "Helped arm" not in html
        if position == 1:
            # The critique beside the item, shown as text (escaped), at once.
            assert page.locator(".assistance-text").inner_text().startswith("<script>")
            if used[1] == 1:
                screenshots_at_both_widths(page, SHOTS, "task-with-critique")
                page.click("text=This helped")
                page.wait_for_selector("text=Noted: helped")
        else:
            assert page.locator(".assistance").count() == 0
            assert "assistant" not in html.lower()
        for n, key in enumerate(plan):
            page.wait_for_selector(f"#work[data-ready] >> text=Question {n}?")
            if key is None:
                page.wait_for_selector("text=Time is up", timeout=(LIMIT_S + 10) * 1000)
                continue
            page.keyboard.press(key)
            if n < 3:
                page.wait_for_selector(f"text=Question {n + 1}?")
        page.wait_for_url(f"{url}/join/{experiment.slug}/done/")
        assert page.locator("#completion-code").inner_text() == "C0DE42"
        assert "cc=C0DE42" in page.locator("#completion-link").get_attribute("href")
        if number == 3:
            screenshots_at_both_widths(page, SHOTS, "done")
        label_posts = [body for body in posted if "key=" in body]
        assert len(label_posts) == sum(key is not None for key in plan)
        assert all("assignment=" in body and "request_id=" in body for body in label_posts)
        context.close()
    assert used == {0: 2, 1: 2}
    assert Response.objects.filter(timed_out=True).count() == 1
    assert AssistanceFlag.objects.count() == 1

    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    browser_login(page, url, researcher.username, PASSWORD)
    page.goto(f"{url}/experiments/{experiment.pk}/")
    control, helped = _expected(0), _expected(1)
    assert (control.k, control.n, helped.k, helped.n) == (5, 7, 6, 8)
    rows = page.locator("tr.arm-row td.accuracy")
    assert rows.nth(0).inner_text() == control.text
    assert rows.nth(1).inner_text() == helped.text
    difference = page.locator(".comparison .difference").inner_text()
    assert difference.startswith(f"{helped.value - control.value:.3f} (95 % CI ")
    assert "participant-clustered bootstrap" in difference
    screenshots_at_both_widths(page, SHOTS, "analysis")
    context.close()


# Question-bank arms: per arm position (0 direct, 1 debate), the probability each of its two
# participants gives to answer A on questions 0–3, typed and sent with Enter.
BANK_PLANS = {0: [[80, 30, 65, 50], [10, 90, 70, 40]],
              1: [[95, 5, 60, 75], [35, 55, 20, 85]]}  # fmt: skip


def test_participants_judge_a_bank_experiments_questions_and_the_analysis_shows_calibration(
    live_asgi_server, browser, researcher, fake_debaters, transcripts_sent
):
    from urllib.parse import parse_qs

    from annotations.models import Assignment
    from experiments.models import ArmItem
    from tests.experiments.conftest import BANK_ARMS, bank_experiment, transcripts_ready

    experiment = bank_experiment(researcher=researcher, protocols=("direct", "debate"), seed=3)
    url = live_asgi_server.url
    # Before the transcripts: the researcher sees the batch's progress, the link waits.
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    browser_login(page, url, researcher.username, PASSWORD)
    page.goto(f"{url}/experiments/{experiment.pk}/")
    assert page.locator(".transcripts .progress").count() == 1
    screenshots_at_both_widths(page, SHOTS, "bank-generating")
    context.close()
    transcripts_ready(experiment)  # on_commit ran at once: no test transaction here
    used = {0: 0, 1: 0}
    # Per arm position and participant: the probabilities put on the correct answer, read
    # from what the page sent and the side each item's correct answer was shown on.
    on_correct: dict[int, list[list[float]]] = {0: [], 1: []}
    for number in range(4):
        context, page, posted = _open_study_link(browser, url, experiment, f"bank{number}", number)
        page.check("input[name=agree]")
        page.click("button:has-text('Continue')")
        page.wait_for_selector("text=Start")
        if number == 0:
            screenshots_at_both_widths(page, SHOTS, "bank-instructions")
        page.click("text=Start")
        person = Participant.objects.get(experiment=experiment, external_id=f"bank{number}")
        position = person.arm.position
        plan = BANK_PLANS[position][used[position]]
        used[position] += 1
        page.wait_for_selector("#work[data-ready] input[name=probability_a]")
        html = page.content()
        assert not any(name in html for name in BANK_ARMS.values())
        assert "passage-secret" not in html
        if position == 0:
            assert "SAYS" not in html and "Debater" not in html
        else:
            assert page.locator("ol.transcript li").count() == 4  # 2 rounds × 2 debaters
            assert "&lt;script&gt;" in html  # the debater's markup shown as text
        if used[position] == 1:
            screenshots_at_both_widths(page, SHOTS, f"bank-task-{person.arm.protocol}")
        for n, percent in enumerate(plan):
            shown = page.locator("#work[data-ready] article.item").get_attribute("id")
            field = page.locator("#work[data-ready] input[name=probability_a]")
            field.fill(str(percent))
            field.press("Enter")
            if n < 3:
                page.wait_for_selector(f"#work[data-ready] article.item:not(#{shown})")
        page.wait_for_url(f"{url}/join/{experiment.slug}/done/")
        assert page.locator("#completion-code").inner_text() == "C0DE42"
        label_posts = [parse_qs(body) for body in posted if "probability_a=" in body]
        assert [int(body["probability_a"][0]) for body in label_posts] == plan
        given = []
        for body in label_posts:
            lease = Assignment.objects.get(pk=int(body["assignment"][0]))
            side = ArmItem.objects.get(item=lease.item_id).correct_side
            percent = int(body["probability_a"][0])
            given.append((percent if side == "a" else 100 - percent) / 100)
        on_correct[position].append(given)
        context.close()
    assert used == {0: 2, 1: 2}

    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    browser_login(page, url, researcher.username, PASSWORD)
    page.goto(f"{url}/experiments/{experiment.pk}/")
    rows = page.locator("tr.arm-row td.accuracy")
    briers = page.locator("tr.calibration-row td.brier")
    for position in (0, 1):
        everyone = [p for person in on_correct[position] for p in person]
        assert rows.nth(position).inner_text() == Share(sum(p > 0.5 for p in everyone), 8).text
        brier = sum((1 - p) ** 2 for p in everyone) / len(everyone)
        assert briers.nth(position).inner_text().startswith(f"{brier:.3f} (")
    assert page.locator("svg.reliability-chart g.series").count() == 2
    assert "clustered by participant" in page.locator(".methods").inner_text()
    screenshots_at_both_widths(page, SHOTS, "bank-analysis")
    page.goto(f"{url}/experiments/")
    assert "(question bank)" in page.locator("main").inner_text()
    screenshots_at_both_widths(page, SHOTS, "bank-list")
    context.close()


def test_an_untimed_arm_swaps_in_the_item_held_ahead_with_its_critique_and_flags(
    live_asgi_server, browser, researcher, monkeypatch
):
    """An untimed arm's page holds the next item ahead, as the labelling page does: a key shows
    it at once, with its own critique in the assisted arm, and its flag buttons work; the last
    label leads to the completion code."""
    from tests.experiments.conftest import FakeBackend

    monkeypatch.setattr("experiments.assistance.backend_for", lambda config: FakeBackend())
    experiment = make_experiment(researcher=researcher, seed=5, slug="untimed")
    job = AssistanceJob.objects.create(arm=experiment.arms.get(position=1), items_total=4)
    assistance_job_run(job_id=job.pk)
    url = live_asgi_server.url
    seen = set()
    for number in range(4):
        context, page, posted = _open_study_link(browser, url, experiment, f"u{number}", number)
        page.check("input[name=agree]")
        page.click("button:has-text('Continue')")
        page.click("text=Start")
        person = Participant.objects.get(experiment=experiment, external_id=f"u{number}")
        position = person.arm.position
        if position in seen:
            context.close()
            continue
        seen.add(position)
        page.wait_for_selector("#work[data-ready] > template.ahead", state="attached")
        for n in range(4):
            page.wait_for_selector(f"#work[data-ready] article.item >> text=Question {n}?")
            if position == 1:
                assert page.locator(".assistance-text").count() == 1
                assert page.locator(".assistance-text").inner_text().startswith("<script>")
            else:
                assert page.locator(".assistance").count() == 0
            if position == 1 and n == 1:
                # Swapped in from the template: its htmx flag forms are wired up too.
                screenshots_at_both_widths(page, SHOTS, "task-with-critique-held-ahead")
                page.click("text=This is wrong")
                page.wait_for_selector("text=Noted: wrong")
            page.keyboard.press("1")
        page.wait_for_url(f"{url}/join/{experiment.slug}/done/")
        assert page.locator("#completion-code").inner_text() == "C0DE42"
        label_posts = [body for body in posted if "key=1" in body]
        assert len(label_posts) == 4 and len({b.split("assignment=")[1] for b in label_posts}) == 4
        assert all("request_id=" in body and "time_ms=" in body for body in label_posts)
        context.close()
    assert seen == {0, 1}
    assert list(AssistanceFlag.objects.values_list("flag", flat=True)) == ["wrong"]
    assert Response.objects.filter(arm_item__arm__experiment=experiment).count() == 8
