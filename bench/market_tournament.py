"""Market and tournament benchmark on the bundled model, each figure against a baseline from
the same run.

Run: .venv/bin/python bench/market_tournament.py [--questions 8] [--tokens 8] [--repeats 3]
     [--skip-market] [--skip-tournament]
     (DATABASE_URL=postgres://… for PostgreSQL; default the SQLite database under var/)

Everything runs inside one transaction that is rolled back at the end. One untimed generation
warms the model up first (the first call pays one-off costs that no later one does).
  (a) a tournament of 3 configs × N questions × every ordered pair (both sides, self-play
      included: 9 debates a question), one round, through the batch path (sibling speeches in
      batched calls) vs the same debates' speeches one after another (target <= 0.5x);
  (b) one market step with n = 4 candidates (one batched generation, then M's predictions
      in one batched `choose` pass) vs one debate speech of the same length, on the same
      passage and question (target <= 1.3x): each measured --repeats times, alternating which
      goes first, so a load that changes during the run falls on both; the medians' ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class Rollback(Exception):
    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=8, help="new tokens per speech")
    parser.add_argument(
        "--repeats", type=int, default=3, help="market steps and speeches timed, in alternation"
    )
    parser.add_argument("--skip-market", action="store_true")
    parser.add_argument("--skip-tournament", action="store_true")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction

    call_command("migrate", verbosity=0)
    print(f"load average at the start: {os.getloadavg()[0]:.1f}", flush=True)
    rows: list[tuple[str, str, str]] = []
    try:
        with transaction.atomic():
            configs, bank, user = _setup(args.questions, args.tokens)
            if not args.skip_market:
                bench_market_step(rows, configs[0], bank, user, args.tokens, args.repeats)
                print(*rows[-1], sep="  ", flush=True)  # as it comes: a slow run still tells
            if not args.skip_tournament:
                bench_tournament(rows, configs, bank, user, args.questions, args.tokens)
                print(*rows[-1], sep="  ", flush=True)
            raise Rollback
    except Rollback:
        pass
    print(f"\ndatabase: {connection.vendor}; {os.cpu_count()} cores; "
          f"load average at the end: {os.getloadavg()[0]:.1f}")  # fmt: skip
    width = max(len(r[0]) for r in rows)
    for name, figure, ratio in rows:
        print(f"{name:<{width}}  {figure:>10}  {ratio}")


def _setup(questions: int, tokens: int):  # type: ignore[no-untyped-def]
    from django.contrib.auth.models import User

    from debate.models import BankQuestion, QuestionBank
    from llm.generation import backend_for
    from llm.models import BUNDLED_CONFIG_NAME, ModelConfig

    bundled = ModelConfig.objects.get(name=BUNDLED_CONFIG_NAME)
    configs = []
    for i, temperature in enumerate((0.0, 0.7, 1.0)):
        config = ModelConfig.objects.create(
            name=f"bench debater {i}", backend=bundled.backend, model=bundled.model,
            temperature=temperature, max_new_tokens=tokens, seed=0,
            timeout_s=3600,  # a loaded machine must not turn a slow batch into failed speeches
        )  # fmt: skip
        configs.append(config)
    backend_for(configs[0])  # load the model once, outside the timings
    user, _ = User.objects.get_or_create(username="bench-market")
    _warm_up(configs[0], tokens)
    bank = QuestionBank.objects.create(name="bench market bank")
    BankQuestion.objects.bulk_create(
        BankQuestion(
            bank=bank, line=i + 1, title="Ledger",
            passage=f"The clerk took the ledger on day {i}. The captain was at sea.",
            question=f"Who took the ledger on day {i}?",
            options=["the clerk", "the captain"], gold_index=0,
        )
        for i in range(questions)
    )  # fmt: skip
    return configs, bank, user


def _warm_up(config, tokens: int) -> None:  # type: ignore[no-untyped-def]
    """One untimed generation through the speech path the timings use."""
    from debate.generation import speeches_generate
    from debate.models import Debate, DebateStatus, Speech

    debate = Debate.objects.create(
        question="Who took the ledger?", answer_a="the clerk", answer_b="the captain",
        correct_side="a", passage="The clerk took the ledger.", debater_a_config=config,
        debater_b_config=config, status=DebateStatus.GENERATING, current_round=1,
        speech_char_limit=200,
    )  # fmt: skip
    speech = Speech.objects.create(debate=debate, round=1, side="a")
    speeches_generate(speech_ids=[speech.pk], stream=False, advance_rounds=False,
                      max_new_tokens=tokens)  # fmt: skip
    if Speech.objects.get(pk=speech.pk).status != "done":
        raise SystemExit("the warm-up generation failed: no figure")


def bench_tournament(rows, configs, bank, user, questions: int, tokens: int) -> None:  # type: ignore[no-untyped-def]
    from debate.generation import speeches_generate
    from debate.models import Debate, Speech
    from debate.records import BatchSpec
    from debate.research.batches import _batch_round, batch_create

    def tournament():  # type: ignore[no-untyped-def]
        spec = BatchSpec(
            tournament_config_ids=[c.pk for c in configs], count=questions, rounds=1,
            max_new_tokens=tokens, speech_char_limit=200, human_judge_id=None,
        )  # fmt: skip
        batch = batch_create(name="bench", bank=bank, spec=spec, created_by=user,
                             llm_judge_config=configs[0])  # fmt: skip
        return batch, spec

    batch, spec = tournament()
    debates = Debate.objects.filter(batch=batch)
    start = time.perf_counter()
    _batch_round(batch, debates, 1, spec)
    concurrent = time.perf_counter() - start
    speeches = Speech.objects.filter(debate__batch=batch, status="done").count()
    if speeches != 2 * Debate.objects.filter(batch=batch).count():
        raise SystemExit(f"only {speeches} speeches of the batch path finished: no figure")

    batch, spec = tournament()
    Speech.objects.bulk_create(
        Speech(debate=d, round=1, side=side) for d in Debate.objects.filter(batch=batch)
        for side in ("a", "b")
    )  # fmt: skip
    start = time.perf_counter()
    for speech_id in Speech.objects.filter(debate__batch=batch).values_list("pk", flat=True):
        speeches_generate(speech_ids=[speech_id], stream=False, advance_rounds=False,
                          max_new_tokens=tokens)  # fmt: skip
    sequential = time.perf_counter() - start
    count = debates.count()
    rows.append((f"(a) tournament: 3 configs × {questions} questions, {count} debates, "
                 f"{speeches} speeches of {tokens} tokens", f"{concurrent:.1f} s",
                 f"{concurrent / sequential:.2f}x one after another ({sequential:.1f} s); "
                 "target <= 0.5x"))  # fmt: skip


def bench_market_step(rows, config, bank, user, tokens: int, repeats: int) -> None:  # type: ignore[no-untyped-def]
    from statistics import median

    from debate.generation import speeches_generate
    from debate.models import Debate, DebateStatus, Market, Speech
    from debate.records import BatchSpec
    from debate.research.batches import batch_create
    from debate.research.markets import _markets, _markets_step

    spec = BatchSpec(
        protocol="market",
        debater_a_config_id=config.pk,
        market_predictor_config_id=config.pk,
        count=1,
        rounds=1,
        market_candidates=4,
        max_new_tokens=tokens,
        speech_char_limit=200,
    )

    def one_run(*, market_first: bool) -> tuple[float, tuple[float, int]]:
        """A fresh market and a fresh debate on the market's own passage, question and answers
        (its sides drawn at random), made untimed; then the step and the speech, timed."""
        batch = batch_create(name="bench market", bank=bank, spec=spec, created_by=user,
                             llm_judge_config=config)  # fmt: skip
        Market.objects.filter(debate__batch=batch).update(initial_probability_a=0.5,
                                                          initial_method="logprobs")  # fmt: skip
        markets = _markets(Market.objects.filter(debate__batch=batch))
        same = markets[0].debate
        debate = Debate.objects.create(
            question=same.question, answer_a=same.answer_a, answer_b=same.answer_b,
            correct_side=same.correct_side, passage=same.passage, debater_a_config=config,
            debater_b_config=config, status=DebateStatus.GENERATING, current_round=1,
            speech_char_limit=same.speech_char_limit, quote_char_limit=same.quote_char_limit,
        )  # fmt: skip
        speech = Speech.objects.create(debate=debate, round=1, side="a")

        def step() -> float:
            start = time.perf_counter()
            _markets_step(markets, 1, max_new_tokens=tokens)
            return time.perf_counter() - start

        def one() -> tuple[float, int]:
            start = time.perf_counter()
            speeches_generate(speech_ids=[speech.pk], stream=False, advance_rounds=False,
                              max_new_tokens=tokens)  # fmt: skip
            took = time.perf_counter() - start
            done = Speech.objects.get(pk=speech.pk)
            if done.status != "done":
                raise SystemExit("a baseline speech failed: no figure")
            return took, done.completion_tokens or 0

        if market_first:
            timed_step = step()
            return timed_step, one()
        timed_one = one()
        return step(), timed_one

    # A speech that stops early (the model wrote its end token) is not "a speech of the same
    # length": the step's 4 candidates run until the longest stops, nearly always at the cap.
    # Only speeches that reached the cap count; the others are printed with their length.
    steps: list[float] = []
    speeches: list[tuple[float, int]] = []
    for run in range(repeats):
        timed_step, timed_one = one_run(market_first=run % 2 == 0)
        steps.append(timed_step)
        speeches.append(timed_one)
    full = [took for took, made in speeches if made >= tokens]
    if not full:
        raise SystemExit(f"no baseline speech reached {tokens} tokens: no figure; "
                         f"speeches (s, tokens): {speeches}")  # fmt: skip
    step, one = median(steps), median(full)
    runs = (f"runs: step {', '.join(f'{t:.2f}' for t in steps)} s; "
            f"speech {', '.join(f'{t:.2f} ({made} tokens)' for t, made in speeches)} s; "
            f"{len(full)} of {len(speeches)} speeches reached {tokens} tokens")  # fmt: skip
    rows.append((f"(b) market step, n = 4 candidates of {tokens} tokens + M's 4 predictions "
                 f"(median of {repeats}, alternating first)", f"{step:.2f} s",
                 f"{step / one:.2f}x one debate speech ({one:.2f} s); target <= 1.3x; "
                 f"{runs}"))  # fmt: skip


if __name__ == "__main__":
    main()
