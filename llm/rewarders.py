"""The reward scorer that policy runs use, registered by the app that owns reward models
(rewards.apps registers one): llm trains on rewards without importing that app.

A scorer takes a reward-model version id and (prompt, response) pairs and returns one reward
a pair, batched. The worker calls it to rank a rejection-sampling run's samples and to score
a finished policy's samples against its parent's (llm/training.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

Rewarder = Callable[[int, Sequence[tuple[str, str]]], list[float]]
_rewarders: list[Rewarder] = []


def run_rewarder_register(rewarder: Rewarder) -> None:
    """Call from an AppConfig.ready() (rewards does). The latest registration wins."""
    if rewarder not in _rewarders:
        _rewarders.append(rewarder)


def run_rewarder() -> Rewarder | None:
    return _rewarders[-1] if _rewarders else None


def run_rewards(version_id: int, pairs: Sequence[tuple[str, str]]) -> list[float]:
    """Rewards of the pairs under that version; LookupError when no scorer is registered."""
    rewarder = run_rewarder()
    if rewarder is None:
        raise LookupError("no reward scorer is registered (is the rewards app installed?)")
    return rewarder(version_id, pairs)
