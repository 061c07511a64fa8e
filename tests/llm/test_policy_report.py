"""The policy report on the bundled model, in process: a policy against itself is 0 nats
away and earns its parent's proxy reward; the proxy comes from the registered scorer."""

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
        scored.append((version_id, list(pairs)))
        return [float(len(response)) for _, response in pairs]

    monkeypatch.setattr("llm.policy_report.run_rewards", length_reward)
    report = policy_report(
        parent=parent, parent_path=path, new_model=model, tokenizer=tokenizer,
        prompts=["Name a colour.", "Name a fruit."], seed=3, reward_version=9,
        reward_label="length v1",
    )  # fmt: skip
    assert report.prompts == 2 and report.samples_per_prompt == 4
    assert report.kl_mean == pytest.approx(0.0, abs=1e-3)
    assert report.kl_low is not None and report.kl_low <= report.kl_mean <= report.kl_high
    # Same weights and seed: the same samples, so the same proxy reward.
    assert report.proxy_new == report.proxy_parent and report.proxy_reward_version == 9
    assert [version for version, _ in scored] == [9, 9]
    new_pairs, parent_pairs = scored[0][1], scored[1][1]
    assert [p for p, _ in new_pairs] == ["Name a colour."] * 4 + ["Name a fruit."] * 4
    assert new_pairs == parent_pairs


def test_without_a_reward_version_there_is_no_proxy(bundled):
    parent, path, tokenizer, model = bundled
    report = policy_report(parent=parent, parent_path=path, new_model=model,
                           tokenizer=tokenizer, prompts=["Hi?"], seed=0,
                           reward_version=None)  # fmt: skip
    assert report.proxy_new is None and report.kl_low is None  # one prompt: no interval
