"""The policy report on the bundled model, in process: a policy against itself is 0 nats
away and earns its parent's proxy and gold reward; both come from the registered scorer,
each under its own version."""

from __future__ import annotations

import pytest

from llm.policy_report import policy_report
from llm.training import base_checkpoint
from tests.llm.training_data import bundled_config


@pytest.fixture
def bundled(db):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    parent = bundled_config()
    path = base_checkpoint(parent)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    return parent, path, tokenizer, model


def test_a_policy_is_no_distance_from_itself_and_scores_as_its_parent(bundled, monkeypatch):
    parent, path, tokenizer, model = bundled
    scored = []

    def length_reward(version_id, pairs):
        # Version 9 (the proxy) rewards length; version 10 (the gold) penalises it.
        scored.append((version_id, list(pairs)))
        sign = 1.0 if version_id == 9 else -1.0
        return [sign * len(response) for _, response in pairs]

    monkeypatch.setattr("llm.policy_report.run_rewards", length_reward)
    report = policy_report(
        parent=parent, parent_path=path, new_model=model, tokenizer=tokenizer,
        prompts=["Name a colour.", "Name a fruit."], seed=3, reward_version=9,
        reward_label="length v1", gold_version=10, gold_label="brevity v2",
    )  # fmt: skip
    assert report.prompts == 2 and report.samples_per_prompt == 4
    assert report.kl_mean == pytest.approx(0.0, abs=1e-3)
    assert report.kl_low is not None and report.kl_low <= report.kl_mean <= report.kl_high
    # Same weights and seed: the same samples, so the same proxy reward.
    assert report.proxy_new == report.proxy_parent and report.proxy_reward_version == 9
    assert [version for version, _ in scored] == [9, 9, 10, 10]
    new_pairs, parent_pairs = scored[0][1], scored[1][1]
    assert [p for p, _ in new_pairs] == ["Name a colour."] * 4 + ["Name a fruit."] * 4
    assert new_pairs == parent_pairs == scored[2][1] == scored[3][1]
    lengths = [len(response) for _, response in new_pairs]
    assert report.proxy_new == pytest.approx(sum(lengths) / 8, abs=1e-5)
    assert (report.gold_reward_version, report.gold_reward_label) == (10, "brevity v2")
    assert report.gold_new == report.gold_parent == pytest.approx(-report.proxy_new, abs=1e-5)
    assert report.gold_diff_low == report.gold_diff_high == 0.0  # paired equal samples
    assert not report.gain_not_in_gold  # the proxy gained nothing either


def test_without_a_reward_version_there_is_no_proxy(bundled):
    parent, path, tokenizer, model = bundled
    report = policy_report(parent=parent, parent_path=path, new_model=model,
                           tokenizer=tokenizer, prompts=["Hi?"], seed=0,
                           reward_version=None)  # fmt: skip
    assert report.proxy_new is None and report.kl_low is None  # one prompt: no interval
    assert report.gold_new is None and report.gold_reward_version is None


@pytest.mark.parametrize(
    ("proxy", "gold", "expected"),
    [
        ((0.1, 0.5), (-0.2, 0.1), True),  # the proxy rose, the gold's interval holds 0
        ((0.1, 0.5), (-0.4, -0.1), True),  # the gold fell
        ((0.1, 0.5), (0.05, 0.3), False),  # both rose
        ((-0.1, 0.5), (-0.2, 0.1), False),  # the proxy's interval holds 0
        ((0.1, 0.5), (None, None), False),  # no gold
    ],
)
def test_a_gain_the_gold_does_not_share_is_named(proxy, gold, expected):
    from llm.schemas import PolicyReport

    report = PolicyReport(prompts=4, samples_per_prompt=4, kl_mean=0.1,
                          proxy_diff_low=proxy[0], proxy_diff_high=proxy[1],
                          gold_diff_low=gold[0], gold_diff_high=gold[1])  # fmt: skip
    assert report.gain_not_in_gold is expected
