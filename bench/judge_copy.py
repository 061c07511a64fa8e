"""Does the LLM judge copy a debater? Share of verdicts whose rationale shares a run of 12 words
with a speech of its debate, for the shipped judge against a baseline measured in the same run
on the same debates (the judge prompt as it was before, no copy check).

Run: .venv/bin/python bench/judge_copy.py [--debates 10] [--tokens 48] [--judge-tokens 64]
     (DATABASE_URL=postgres://… for PostgreSQL; default the SQLite database under var/)

One batch of AI debates on the bundled SmolLM2-135M-Instruct through the real batch path
(debate.research.batches.batch_run): the five short story questions of bench/debater_focus.py
in turn, one simultaneous opening round, the bundled config as both debaters and as the LLM
judge. *After* is what that batch stores: the shipped judge prompt, and the copy check that
cuts every copied run out of the rationale and marks it. *Before* asks the same judge about
the same debates with the judge prompt as it was before (no "in your own words"), and keeps
the reply as it comes, as the batch did then. The A/B vote fallback is left out (its
one-letter answers never reach a rationale). Everything runs in one transaction that is
rolled back: the database is left as it was.

Definitions (the README quotes them): a verdict *copies* when its reply (for *after*: the
reply before the check cut it, which the check's mark "[N words copied from a speech removed]"
records) shares a run of COPY_RUN_WORDS = 12 words with a speech of its debate: words compared
case-insensitively without punctuation, quote markup ignored (debate.research.batches
.copied_runs). Shares carry a 95 % Wilson interval.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from bench.debater_focus import QUESTIONS  # noqa: E402

# The judge prompt every batch was created with before the copy fix (commit 281fd2b).
BEFORE_PROMPT = """You judge a {protocol} about a story you have not read. Quotes the \
system checked against the story are marked <v_quote>; unchecked ones <u_quote>.

Question: {question}
Answer A: {answer_a}
Answer B: {answer_b}

Transcript:
{transcript}

How likely is answer A to be correct? Reply with a number from 1 to 99, as \
"Probability A: <number>", then one sentence of reasons."""

REMOVED = "copied from a speech removed]"


class Rollback(Exception):
    pass


def wilson(hits: int, n: int) -> str:
    from debate.research.analytics import Share

    low, high = Share(hits, n).interval or (0.0, 1.0)
    return f"{hits}/{n} = {hits / n:.0%} (95 % Wilson {low:.0%}–{high:.0%})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--debates", type=int, default=10)
    parser.add_argument("--tokens", type=int, default=48, help="new tokens per speech")
    parser.add_argument("--judge-tokens", type=int, default=64, help="new tokens per verdict")
    args = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import transaction

    from debate.models import BankQuestion, QuestionBank, Verdict
    from debate.records import BatchSpec
    from debate.research import batches
    from llm.models import BUNDLED_CONFIG_NAME, ModelConfig

    call_command("migrate", verbosity=0)
    print(f"load average at the start: {os.getloadavg()}, {os.cpu_count()} CPUs")
    try:
        with transaction.atomic():
            user = User.objects.create(username="bench-judge-copy")
            bank = QuestionBank.objects.create(name="bench-judge-copy")
            BankQuestion.objects.bulk_create(
                BankQuestion(
                    bank=bank,
                    line=n + 1,
                    passage=passage,
                    question=question,
                    options=[answer_a, answer_b],
                    gold_index=n % 2,
                )  # fmt: skip
                for n, (question, answer_a, answer_b, passage) in (
                    (n, QUESTIONS[n % len(QUESTIONS)]) for n in range(args.debates)
                )
            )
            config = ModelConfig.objects.get(name=BUNDLED_CONFIG_NAME)
            # A shared machine under load: a slow call is measured, not failed (rolled back).
            config.timeout_s = 3600
            config.save(update_fields=["timeout_s"])
            spec = BatchSpec(
                debater_a_config_id=config.pk, count=args.debates, max_new_tokens=args.tokens,
                judge_max_new_tokens=args.judge_tokens,
            )  # fmt: skip
            batch = batches.batch_create(
                name="bench", bank=bank, spec=spec, created_by=user, llm_judge_config=config
            )
            # The A/B votes a reply with no probability falls back on are one-letter answers:
            # they never reach a rationale, so the copy measure does not need them (and they
            # cost 8 calls a verdict). Those verdicts are recorded as 50 % here.
            batches.judge_votes = lambda config, debates: {}
            start = time.perf_counter()
            batches.batch_run(batch_id=batch.pk)
            batch.refresh_from_db()
            assert batch.status == "done", batch.error
            print(f"batch (speeches, judge): {time.perf_counter() - start:.0f} s")
            debates = list(batch.debates.prefetch_related("speeches").order_by("pk"))
            speeches = {d.pk: [s.text for s in d.speeches.all()] for d in debates}

            params = config.generation_params(
                max_new_tokens=min(config.max_new_tokens, args.judge_tokens)
            )
            start = time.perf_counter()
            before = []
            for n in range(0, len(debates), batches.GENERATION_BATCH):
                chunk = debates[n : n + batches.GENERATION_BATCH]
                prompts = [batches.judge_messages(d, BEFORE_PROMPT) for d in chunk]
                before += [c.text for c in batches._generate(config, prompts, params)]
            print(f"before-prompt replies: {time.perf_counter() - start:.0f} s")
            verdicts = {
                v.debate_id: v.rationale
                for v in Verdict.objects.filter(debate__batch=batch, kind="llm")
            }
            before_copies = [
                bool(batches.copied_runs(reply, speeches[d.pk]))
                for d, reply in zip(debates, before, strict=True)
            ]
            after_copies = [REMOVED in verdicts[d.pk] for d in debates]
            failed = sum("(the judge failed" in verdicts[d.pk] for d in debates)
            unread = sum("[no probability in the reply" in verdicts[d.pk] for d in debates)
            print(f"after: {failed} judge calls failed, {unread} replies named no probability")
            stored_copies = [bool(batches.copied_runs(verdicts[d.pk], speeches[d.pk]))
                             for d in debates]  # fmt: skip
            for label, replies in (
                ("before", before),
                ("after", [verdicts[d.pk] for d in debates]),
            ):
                print(f"\n== {label}: the first replies")
                for reply in replies[:4]:
                    print("  ·", reply.replace("\n", " ⏎ ")[:240])
            n = len(debates)
            print(f"\nload average at the end: {os.getloadavg()}")
            print(f"\nverdicts sharing a {batches.COPY_RUN_WORDS}-word run with a speech (n={n})")
            print(f"before (old prompt, reply as stored then): {wilson(sum(before_copies), n)}")
            print(f"after, the reply the shipped prompt got:   {wilson(sum(after_copies), n)}")
            print(f"after, the rationale stored:               {wilson(sum(stored_copies), n)}")
            raise Rollback
    except Rollback:
        pass


if __name__ == "__main__":
    main()
