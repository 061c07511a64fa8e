"""Generation backends, usable without Django.

This package's top level re-exports only the light types (no torch): the web process
imports them to build params and catch errors. Import `llm.backends.transformers_backend`
(worker only) for local models, `llm.backends.openai_backend` for inference servers.
"""

from llm.backends.base import (
    Backend,
    ChatMessage,
    Completion,
    GenerationError,
    GenerationParams,
    GenerationTimeoutError,
    ModelUnavailableError,
    OptionChoice,
    RowChunk,
    StreamChunk,
    Usage,
)
from llm.backends.bundled import BUNDLED_MODEL_ID, bundled_checkpoint, resolve_model_path

__all__ = [
    "BUNDLED_MODEL_ID",
    "Backend",
    "ChatMessage",
    "Completion",
    "GenerationError",
    "GenerationParams",
    "GenerationTimeoutError",
    "ModelUnavailableError",
    "OptionChoice",
    "RowChunk",
    "StreamChunk",
    "Usage",
    "bundled_checkpoint",
    "resolve_model_path",
]
