"""Per-process LRU cache of loaded local models.

A worker serves several model configs; loading one takes seconds and hundreds of MB, so we
keep the most recently used `max_models` (the LLM_MODEL_CACHE_SIZE setting, passed in by
the caller: this module does not import Django). The cache is deliberately per process,
never shared: each worker process holds its own models.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Type-only: importing this module must not import torch (the web process may).
    from llm.backends.transformers_backend import TransformersBackend

Loader = Callable[[str, str], "TransformersBackend"]


def _load_transformers(
    model_path: str, config_name: str, *, dtype: str = "auto"
) -> TransformersBackend:
    from llm.backends.transformers_backend import TransformersBackend

    return TransformersBackend(model_path, config_name=config_name, dtype=dtype)


class ModelCache:
    """Thread-safe LRU of TransformersBackend keyed by resolved model path.

    Two threads asking for the same missing model load it once (a per-path lock); a thread
    loading one model does not block lookups of others.
    """

    def __init__(self, *, max_models: int, loader: Loader | None = None) -> None:
        if max_models < 1:
            raise ValueError(f"max_models must be at least 1, got {max_models}")
        self._max_models = max_models
        self._loader: Loader = loader or _load_transformers
        self._models: OrderedDict[str, TransformersBackend] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    @property
    def max_models(self) -> int:
        return self._max_models

    def resize(self, max_models: int) -> None:
        if max_models < 1:
            raise ValueError(f"max_models must be at least 1, got {max_models}")
        with self._lock:
            self._max_models = max_models
            self._evict()

    def get(self, model_path: str, *, config_name: str) -> TransformersBackend:
        """The loaded model at `model_path`, loading it (and evicting the LRU one) if needed.

        The returned backend reports errors under `config_name`, even when the weights are
        shared with another config that points at the same path.
        """
        with self._lock:
            backend = self._lookup(model_path)
            path_lock = (
                self._loading.setdefault(model_path, threading.Lock()) if backend is None else None
            )
        if path_lock is not None:
            with path_lock:
                with self._lock:
                    backend = self._lookup(model_path)
                if backend is None:
                    # Slow (seconds): done without the cache-wide lock held.
                    backend = self._loader(model_path, config_name)
                    with self._lock:
                        self._models[model_path] = backend
                        self._evict()
                        self._loading.pop(model_path, None)
        assert backend is not None
        return backend.renamed(config_name)

    def __contains__(self, model_path: object) -> bool:
        with self._lock:
            return model_path in self._models

    def __len__(self) -> int:
        with self._lock:
            return len(self._models)

    def clear(self) -> None:
        with self._lock:
            self._models.clear()

    def _lookup(self, model_path: str) -> TransformersBackend | None:
        backend = self._models.get(model_path)
        if backend is not None:
            self._models.move_to_end(model_path)
        return backend

    def _evict(self) -> None:
        # Dropping our reference frees the model once no in-flight generation still uses it.
        while len(self._models) > self._max_models:
            self._models.popitem(last=False)


_process_cache: ModelCache | None = None
_process_cache_dtype = ""
_process_cache_lock = threading.Lock()


def process_model_cache(*, max_models: int, dtype: str = "auto") -> ModelCache:
    """The one cache of this process, created on first use, resized if the bound changed and
    emptied if the dtype did (its models were loaded in the old one)."""
    global _process_cache, _process_cache_dtype
    with _process_cache_lock:
        if _process_cache is None or _process_cache_dtype != dtype:
            loader = functools.partial(_load_transformers, dtype=dtype)
            _process_cache = ModelCache(max_models=max_models, loader=loader)
            _process_cache_dtype = dtype
        elif _process_cache.max_models != max_models:
            _process_cache.resize(max_models)
        return _process_cache
