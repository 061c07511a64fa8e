"""Small training sets for the training-run tests: rows a few SFT steps visibly learn."""

from __future__ import annotations

from llm.models import Backend, ModelConfig
from llm.schemas import SFTHyperparameters, TrainingRow

TOPICS = ["tides", "volcanoes", "bridges", "glaciers", "comets", "rivers", "deserts", "forests",
          "storms", "islands", "canyons", "reefs", "caves", "lakes", "valleys", "dunes",
          "geysers", "swamps", "plateaus", "lagoons"]  # fmt: skip


def learnable_rows(n: int = 40) -> list[TrainingRow]:
    """`n` short rows whose completions share one pattern, so a held-out question's answer
    gets likelier after a few steps (its eval loss falls)."""
    return [
        TrainingRow(
            prompt=f"Question {i}: what do you know about {TOPICS[i % len(TOPICS)]}?",
            completion=f"Arbiter answer: {TOPICS[i % len(TOPICS)]} are covered in chapter {i}.",
        )
        for i in range(n)
    ]


def bundled_config(name: str = "bundled") -> ModelConfig:
    return ModelConfig.objects.create(name=name, model="bundled:smollm2-135m-instruct",
                                      max_new_tokens=4, seed=1, temperature=0.0)  # fmt: skip


def openai_config() -> ModelConfig:
    return ModelConfig.objects.create(
        name="server", backend=Backend.OPENAI, model="m", base_url="http://127.0.0.1:9/v1"
    )


def tiny_hyperparameters(**overrides: object) -> SFTHyperparameters:
    values: dict[str, object] = {"learning_rate": 3e-4, "max_steps": 3, "batch_size": 8,
                                 "max_length": 64, "eval_percent": 10}  # fmt: skip
    values.update(overrides)
    return SFTHyperparameters(**values)  # type: ignore[arg-type]
