"""The report's statistics: the mean of prompt means and its bootstrap interval."""

from __future__ import annotations

from llm.stats import bootstrap_interval, mean_of_prompt_means


def test_the_mean_weights_prompts_equally_and_the_interval_brackets_it():
    groups = [[0.0, 2.0], [1.0, 1.0], [3.0, 5.0], [2.0, 2.0]]
    assert mean_of_prompt_means(groups) == 2.0
    low, high = bootstrap_interval(groups, seed=1)
    assert 0.0 < low < 2.0 < high < 5.0
    assert bootstrap_interval(groups, seed=1) == (low, high)  # seeded: repeatable


def test_one_prompt_has_no_interval_and_identical_prompts_a_point():
    assert bootstrap_interval([[1.0, 2.0]], seed=0) is None
    assert bootstrap_interval([[0.5], [0.5], [0.5]], seed=0) == (0.5, 0.5)
