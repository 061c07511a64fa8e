"""Worker side: turn a ModelConfig into a live backend. Importing it stays light (the web
process may): the transformers backend (torch) is loaded lazily by the per-process model cache."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from django.conf import settings

from core.streams import TextStreamPublisher
from llm.backends.base import (
    Backend,
    ChatMessage,
    ModelUnavailableError,
    OptionChoice,
    StreamChunk,
    votes_problem,
)
from llm.backends.bundled import resolve_model_path
from llm.backends.cache import process_model_cache
from llm.backends.openai_backend import OpenAIBackend
from llm.models import Backend as BackendKind
from llm.models import ModelConfig


def backend_for(config: ModelConfig) -> Backend:
    if config.backend == BackendKind.OPENAI:
        api_key = os.environ.get(config.api_key_env) if config.api_key_env else None
        if config.api_key_env and api_key is None:
            raise ModelUnavailableError(
                f"the environment variable {config.api_key_env} is not set on this worker",
                config_name=config.name,
            )
        return OpenAIBackend(
            config.base_url, model=config.model, api_key=api_key, config_name=config.name
        )
    path = resolve_model_path(
        config.model, models_dir=settings.LLM_MODELS_DIR, config_name=config.name
    )
    cache = process_model_cache(max_models=settings.LLM_MODEL_CACHE_SIZE, dtype=settings.LLM_DTYPE)
    return cache.get(path, config_name=config.name)


def choose(
    config: ModelConfig, chats: Sequence[Sequence[ChatMessage]], options: Sequence[str]
) -> list[OptionChoice]:
    """Each chat's probability of answering with each option, under `config`: from
    log-probabilities (transformers always; servers that give them) or sampled votes."""
    return backend_for(config).choose_batch(chats, options, params=config.generation_params())


def probability_problem(config: ModelConfig) -> str | None:
    """Why `choose` cannot give probabilities under `config`, or None when it can: the one
    rule a caller that needs probabilities asks before it starts anything.

    transformers: never a problem (the options' log-probabilities from one forward pass).
    An OpenAI-compatible server may or may not give `logprobs`, which only a request shows;
    where it does not, `choose` falls back to sampled votes, so the config must be one whose
    votes are a probability (`votes_problem`).
    """
    if config.backend != BackendKind.OPENAI:
        return None
    problem = votes_problem(config.generation_params())
    if problem is None:
        return None
    return (
        f"{config.name} is served by an OpenAI-compatible server, which may give no "
        f"log-probabilities; then probabilities come from sampled votes, and {problem}. Set "
        "its temperature above 0, or use a transformers model."
    )


def chat_messages(config: ModelConfig, user_text: str) -> list[ChatMessage]:
    messages: list[ChatMessage] = []
    if config.system_prompt:
        messages.append(ChatMessage(role="system", content=config.system_prompt))
    messages.append(ChatMessage(role="user", content=user_text))
    return messages


def stream_published(
    chunks: Iterable[StreamChunk], publisher: TextStreamPublisher
) -> StreamChunk | None:
    """Feed a backend's stream to a publisher; its last chunk (usage and finish reason)."""
    last = None
    for chunk in chunks:
        publisher.feed(chunk.text, chunk.tokens)
        last = chunk
    publisher.flush()
    return last
