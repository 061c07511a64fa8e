"""Local generation with transformers on CPU (or whatever torch finds).

Only the worker process imports this module; it pulls in torch and transformers at import.

Generation runs our own decode loop instead of `generate` (+ `TextIteratorStreamer` when
streaming): the streamer's thread hand-off delivered ~0.65x of bare `generate` on the 2-core
target machine, while a plain forward loop over a KV cache matches or beats `generate` (no
per-step logits processor stack, logits for the last position only). The loop also runs a
prompt prefix that every row shares once, at batch size 1, which `generate` cannot: a market's
candidates repeat one debate's prompt, and AI labels repeat one set of instructions.
"""

from __future__ import annotations

import copy
import inspect
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache
from transformers.cache_utils import DynamicLayer

from llm.backends.base import (
    ChatMessage,
    Completion,
    FinishReason,
    GenerationError,
    GenerationParams,
    GenerationTimeoutError,
    ModelUnavailableError,
    OptionChoice,
    RowChunk,
    StopScanner,
    StreamChunk,
    Usage,
    options_check,
)

# Chats per forward pass when scoring options: bounds the padded batch's memory.
_CHOICE_BATCH = 16
# Prompt tokens kept as decode context so the first generated token detokenises with the
# spacing it would have mid-text (some tokenizers drop a leading space at sequence start).
_DECODE_CONTEXT_TOKENS = 4
_REPLACEMENT_CHAR = "\ufffd"
# A prompt prefix every row shares is run once (batch size 1) when it is at least this long;
# below it, one more forward pass and a cache copy cost more than the tokens saved.
_MIN_SHARED_PREFIX = 16


class TransformersBackend:
    """One causal LM plus its tokenizer, loaded strictly from local files.

    Safe to call from several threads (each call has its own cache and RNG), but calls share
    the CPU, so callers that care about latency serialise them (see llm/openai_server.py).
    """

    def __init__(
        self,
        model_path: str,
        *,
        config_name: str,
        torch_threads: int | None = None,
        dtype: str = "auto",
    ) -> None:
        self.model_path = model_path
        self.config_name = config_name
        if torch_threads is not None:
            # Process-wide in torch; a worker runs one model at a time, so that is what we want.
            torch.set_num_threads(torch_threads)
        is_dir = Path(model_path).is_dir()
        if not is_dir and (model_path.startswith(("/", ".", "~")) or Path(model_path).exists()):
            raise ModelUnavailableError(
                f"model path {model_path!r} does not exist or is not a checkpoint directory",
                config_name=config_name,
            )
        try:
            # local_files_only: never reach for the hub at run time, whatever the environment.
            self.tokenizer: Any = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
            self.model: Any = AutoModelForCausalLM.from_pretrained(
                model_path, local_files_only=True, dtype=compute_dtype(dtype)
            )
        except (OSError, ValueError) as exc:
            where = "directory" if is_dir else "offline Hugging Face cache"
            raise ModelUnavailableError(
                f"could not load model {model_path!r} from the local {where}: {exc}",
                config_name=config_name,
            ) from exc
        self.model.eval()
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # Batched decoder-only generation must pad on the left so every row ends at its prompt.
        self.tokenizer.padding_side = "left"
        self._eos_ids = _eos_token_ids(self.model, self.tokenizer)
        forward_parameters = inspect.signature(self.model.forward).parameters
        self._pass_logits_to_keep = "logits_to_keep" in forward_parameters
        # transformers 5.24 renamed forward's `past_key_values` to `cache` (the old name warns).
        self._cache_argument = "cache" if "cache" in forward_parameters else "past_key_values"
        self._max_positions: int | None = getattr(
            self.model.config, "max_position_embeddings", None
        )
        # Rows share a prefix's cache with padding between it and their own tokens. That is
        # exact only where every layer attends to the whole past (no sliding window, whose
        # span would count the padding; no recurrent state, which padding would change).
        self._shares_prefixes = all(
            type(layer) is DynamicLayer for layer in DynamicCache(config=self.model.config).layers
        )

    def renamed(self, config_name: str) -> TransformersBackend:
        """A view sharing this model and tokenizer whose errors name another config."""
        if config_name == self.config_name:
            return self
        clone = copy.copy(self)
        clone.config_name = config_name
        return clone

    # -- prompts -------------------------------------------------------------------------

    def render_prompt(self, messages: Sequence[ChatMessage]) -> str:
        """The exact text the model sees, including the assistant-turn opener."""
        if getattr(self.tokenizer, "chat_template", None):
            text: str = self.tokenizer.apply_chat_template(
                list(messages), add_generation_prompt=True, tokenize=False
            )
            return text
        # Base models ship no template; a plain transcript still lets them continue sensibly.
        lines = [f"{m['role']}: {m['content']}" for m in messages]
        return "\n".join([*lines, "assistant:"])

    def encode_prompt(self, messages: Sequence[ChatMessage]) -> list[int]:
        # The template already contains any BOS/special tokens; adding them again would
        # double them.
        ids: list[int] = self.tokenizer(self.render_prompt(messages), add_special_tokens=False)[
            "input_ids"
        ]
        return ids

    # -- streaming -----------------------------------------------------------------------

    def stream_chat(
        self, messages: Sequence[ChatMessage], *, params: GenerationParams
    ) -> Iterator[StreamChunk]:
        """Yield text deltas as they are decoded; the last chunk carries usage.

        Raises GenerationTimeoutError between tokens once `params.timeout_s` has passed.
        """
        for row_chunk in self.stream_batch([messages], params=params):
            yield row_chunk.chunk

    def stream_batch(
        self, chats: Sequence[Sequence[ChatMessage]], *, params: GenerationParams
    ) -> Iterator[RowChunk]:
        """Decode all chats together (one forward pass a step over a left-padded batch and
        one KV cache), yielding each row's text deltas as they are decoded. Every row ends
        with a chunk carrying its usage and finish reason; a row that is done is fed padding
        until the longest one ends. Rows share one sampling generator (seeded by
        `params.seed`), so sampled rows differ from each other even with a seed. A prompt
        prefix all rows share (a repeated chat, a common system prompt) is run once.

        Raises GenerationTimeoutError between steps once `params.timeout_s` has passed.
        """
        params.validate()
        if not chats:
            return
        start = time.perf_counter()
        prompts = [self.encode_prompt(chat) for chat in chats]
        self._check_length(max(len(ids) for ids in prompts), params)
        deadline = start + params.timeout_s
        generator = _make_generator(params.seed)
        rows = [_Row(self.tokenizer, ids, params) for ids in prompts]
        pad_id = int(self.tokenizer.pad_token_id)
        step = 0

        with torch.inference_mode():
            batch = self._batch(prompts, self._shared_prefix(prompts), copy_prefix=False)
            while step < params.max_new_tokens and any(not row.finished for row in rows):
                if time.perf_counter() > deadline:
                    raise self._timeout(params, step)
                logits = self._forward(batch)
                step += 1
                next_tokens = []
                for index, row in enumerate(rows):
                    if row.finished:
                        next_tokens.append(pad_id)
                        continue
                    token = _sample(row.counts.penalise(logits[index]), params, generator)
                    row.counts.add(token)
                    next_tokens.append(token)
                    chunk = row.push(token, self._eos_ids, start)
                    if chunk is not None:
                        yield RowChunk(index, chunk)
                batch.advance(next_tokens)
        for index, row in enumerate(rows):
            if not row.finished:
                yield RowChunk(index, row.finish("length", start))

    # -- batch ---------------------------------------------------------------------------

    def generate_batch(
        self, chats: Sequence[Sequence[ChatMessage]], *, params: GenerationParams
    ) -> list[Completion]:
        """All chats decoded together by `stream_batch` (so a shared prompt prefix is run
        once, and seeds, stops and penalties mean what they mean there); one Completion per
        chat, in order.

        `usage.total_s` is the whole batch's wall time (the caller gets the rows together),
        and `time_to_first_token_s` is None because nothing is streamed.
        """
        start = time.perf_counter()
        texts: list[list[str]] = [[] for _ in chats]
        ends: list[StreamChunk | None] = [None] * len(chats)
        for row_chunk in self.stream_batch(chats, params=params):
            texts[row_chunk.row].append(row_chunk.chunk.text)
            if row_chunk.chunk.usage is not None:
                ends[row_chunk.row] = row_chunk.chunk
        total_s = time.perf_counter() - start
        completions: list[Completion] = []
        for parts, end in zip(texts, ends, strict=True):
            # stream_batch ends every row with its usage or raises.
            assert end is not None and end.usage is not None and end.finish_reason is not None
            usage = Usage(
                prompt_tokens=end.usage.prompt_tokens,
                completion_tokens=end.usage.completion_tokens,
                time_to_first_token_s=None,
                total_s=total_s,
            )
            completions.append(
                Completion(text="".join(parts), usage=usage, finish_reason=end.finish_reason)
            )
        return completions

    # -- shared prefixes -------------------------------------------------------------------

    def _shared_prefix(self, prompts: list[list[int]]) -> _Prefix | None:
        """The prompts' common prefix run once at batch size 1, or None where sharing does
        not pay (see `_shared_prefix_length`) or is not exact for this model."""
        length = _shared_prefix_length(prompts) if self._shares_prefixes else 0
        if not length:
            return None
        cache = DynamicCache(config=self.model.config)
        kwargs: dict[str, Any] = {self._cache_argument: cache, "use_cache": True}
        if self._pass_logits_to_keep:
            kwargs["logits_to_keep"] = 1
        self.model(input_ids=torch.tensor([prompts[0][:length]]), **kwargs)
        return _Prefix(length=length, cache=cache)

    def _batch(
        self, prompts: list[list[int]], prefix: _Prefix | None, *, copy_prefix: bool
    ) -> _Batch:
        """The first forward pass's inputs: each row's tokens after the shared prefix (all of
        them without one), left-padded, with the prefix's cache repeated for every row.

        The padding sits between the prefix and the row's own tokens; the mask hides it and
        positions continue from the prefix, so each row computes what it would alone. Pass
        copy_prefix when the prefix serves another batch later (the repeat is in place).
        """
        shared = prefix.length if prefix is not None else 0
        suffixes = [ids[shared:] for ids in prompts]
        if prefix is None:
            cache = DynamicCache(config=self.model.config)
        else:
            cache = copy.deepcopy(prefix.cache) if copy_prefix else prefix.cache
            cache.batch_repeat_interleave(len(prompts))
        pad_id = int(self.tokenizer.pad_token_id)
        width = max(len(ids) for ids in suffixes)
        inputs = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in suffixes])
        # Unpadded rows need no mask or positions: the model's defaults are exact there.
        if all(len(ids) == width for ids in suffixes):
            return _Batch(cache=cache, inputs=inputs, mask=None, positions=None)
        mask = torch.tensor([[1] * shared + [0] * (width - len(ids)) + [1] * len(ids)
                             for ids in suffixes])  # fmt: skip
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)[:, shared:]
        return _Batch(cache=cache, inputs=inputs, mask=mask, positions=positions)

    def _forward(self, batch: _Batch) -> torch.Tensor:
        """Run the batch's inputs into its cache; the last position's logits, [rows, vocab]."""
        kwargs: dict[str, Any] = {self._cache_argument: batch.cache, "use_cache": True}
        if self._pass_logits_to_keep:
            # Prefill would otherwise project every prompt position onto the vocabulary.
            kwargs["logits_to_keep"] = 1
        if batch.mask is not None:
            kwargs.update(attention_mask=batch.mask, position_ids=batch.positions)
        logits: torch.Tensor = self.model(input_ids=batch.inputs, **kwargs).logits[:, -1].float()
        return logits

    # -- option probabilities --------------------------------------------------------------

    def choose_batch(
        self,
        chats: Sequence[Sequence[ChatMessage]],
        options: Sequence[str],
        *,
        params: GenerationParams,
    ) -> list[OptionChoice]:
        """Each chat's probability of answering with each option, from one forward pass per
        chat (batched, never sampling): the next-token probability of each option's first
        token, with and without a leading space, normalised over the options.

        Raises ValueError when two options start with the same token (the model could not
        tell them apart in one step), GenerationTimeoutError past `params.timeout_s`.
        """
        variants = self._option_tokens(options_check(options))
        if not chats:
            return []
        deadline = time.perf_counter() + params.timeout_s
        prompts = [self.encode_prompt(chat) for chat in chats]
        # Batched by length (then put back in order): a batch pads to its longest prompt, so
        # neighbours of similar length waste the least compute on padding.
        by_length = sorted(range(len(prompts)), key=lambda n: len(prompts[n]))
        choices: list[OptionChoice | None] = [None] * len(chats)
        with torch.inference_mode():
            # Once for all the chats (instructions, a constitution), whichever batch they go in.
            prefix = self._shared_prefix(prompts)
        for first in range(0, len(by_length), _CHOICE_BATCH):
            if time.perf_counter() > deadline:
                raise self._timeout(params, 0)
            part = by_length[first : first + _CHOICE_BATCH]
            probs = self._next_token_probabilities([prompts[n] for n in part], prefix)
            for n, row in zip(part, probs, strict=True):
                per_option = [float(row[ids].sum()) for ids in variants]
                mass = sum(per_option)
                choices[n] = OptionChoice(
                    probabilities=tuple(p / mass for p in per_option) if mass > 0 else None,
                    method="logprobs",
                    option_mass=mass,
                )
        return [choice for choice in choices if choice is not None]

    def first_token_top(
        self, messages: Sequence[ChatMessage], *, k: int
    ) -> list[tuple[str, float]]:
        """The k most likely first tokens of the reply, as (text, natural-log probability),
        most likely first: what the OpenAI-compatible server answers for `top_logprobs`."""
        probs = self._next_token_probabilities([self.encode_prompt(messages)])[0]
        top = torch.topk(probs, k=min(k, probs.shape[0]))
        return [
            (self.tokenizer.decode([int(token)]), math.log(max(float(p), 1e-45)))
            for p, token in zip(top.values, top.indices, strict=True)
        ]

    def _option_tokens(self, options: list[str]) -> list[list[int]]:
        """Each option's possible first tokens: as the reply's start, and after a space.
        A spelling whose first token is only the space (tokenizers that split digits, as
        SmolLM2's does: " 1" is " ", "1") names no option in that token and is left out;
        otherwise every digit would share it and a 1–7 rating could not be asked."""
        variants: list[list[int]] = []
        for option in options:
            ids = set()
            for spelling in (option, " " + option):
                tokens = self.tokenizer(spelling, add_special_tokens=False)["input_ids"]
                if tokens and self.tokenizer.decode(tokens[:1]).strip():
                    ids.add(int(tokens[0]))
            variants.append(sorted(ids))
        for i, mine in enumerate(variants):
            for j in range(i):
                if set(mine) & set(variants[j]):
                    raise ValueError(
                        f"options {options[j]!r} and {options[i]!r} begin with the same token; "
                        "use options that differ in their first word"
                    )
        return variants

    def _next_token_probabilities(
        self, prompts: list[list[int]], prefix: _Prefix | None = None
    ) -> torch.Tensor:
        """Softmax over the vocabulary at each prompt's end: [len(prompts), vocab]. A given
        prefix (of every prompt) is reused from its cache and left as it was."""
        self._check_length(max(len(ids) for ids in prompts), GenerationParams(max_new_tokens=1))
        with torch.inference_mode():
            logits = self._forward(self._batch(prompts, prefix, copy_prefix=True))
        return torch.softmax(logits, dim=-1)

    def _check_length(self, prompt_tokens: int, params: GenerationParams) -> None:
        limit = self._max_positions
        if limit is not None and prompt_tokens + params.max_new_tokens > limit:
            raise GenerationError(
                f"prompt of {prompt_tokens} tokens plus max_new_tokens={params.max_new_tokens} "
                f"exceeds the model's context of {limit} tokens",
                config_name=self.config_name,
            )

    def _timeout(self, params: GenerationParams, generated: int) -> GenerationTimeoutError:
        return GenerationTimeoutError(
            f"generation exceeded the {params.timeout_s:g} s timeout after {generated} tokens",
            config_name=self.config_name,
        )


def compute_dtype(choice: str) -> torch.dtype:
    """The torch dtype for a model: "float32", "bfloat16", or "auto" — bfloat16 where the
    CPU multiplies it natively, float32 elsewhere (emulated bfloat16 is slower)."""
    if choice == "float32":
        return torch.float32
    if choice == "bfloat16":
        return torch.bfloat16
    if choice != "auto":
        raise ValueError(f"unknown dtype {choice!r}; use auto, float32 or bfloat16")
    # The model runs on the CPU. These probes are private but present since torch 2.1;
    # without them, assume no native bfloat16.
    native = any(
        getattr(torch.cpu, probe, lambda: False)()
        for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    )
    return torch.bfloat16 if native else torch.float32


def _eos_token_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    # Chat models often end turns with a token other than the tokenizer's EOS; the
    # generation config lists all of them.
    ids: set[int] = set()
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(int(i) for i in configured)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return frozenset(ids)


def _make_generator(seed: int | None) -> torch.Generator:
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def _penalties(
    logits: torch.Tensor, counts: torch.Tensor, params: GenerationParams
) -> torch.Tensor:
    """OpenAI's frequency and presence penalties; `counts` holds how often each token was
    generated so far (same shape as `logits`)."""
    return (
        logits
        - counts * params.frequency_penalty
        - (counts > 0).to(logits.dtype) * params.presence_penalty
    )


class _TokenCounts:
    """How often each token was generated so far, for one streamed completion."""

    def __init__(self, params: GenerationParams) -> None:
        self.params = params
        self.counts: torch.Tensor | None = None

    def penalise(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.params.penalised:
            return logits
        if self.counts is None:
            self.counts = torch.zeros_like(logits)
        return _penalties(logits, self.counts, self.params)

    def add(self, token: int) -> None:
        if self.counts is not None:
            self.counts[token] += 1


def _sample(logits: torch.Tensor, params: GenerationParams, generator: torch.Generator) -> int:
    if params.temperature == 0:
        return int(logits.argmax())
    logits = logits / params.temperature
    if params.top_p >= 1.0:
        probs = torch.softmax(logits, dim=-1)
        return int(torch.multinomial(probs, 1, generator=generator))
    sorted_logits, order = torch.sort(logits, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    # Drop tokens once the mass *before* them reaches top_p; the most likely always stays.
    mass_before = torch.cumsum(probs, dim=-1) - probs
    probs = probs.masked_fill(mass_before >= params.top_p, 0.0)
    choice = torch.multinomial(probs, 1, generator=generator)
    return int(order[choice])


def _shared_prefix_length(prompts: Sequence[list[int]]) -> int:
    """How many tokens at the start of every prompt to run once for the whole batch: their
    longest common prefix less one token, so each row keeps at least one token of its own
    whose logits the first step reads (identical prompts share all but their last token);
    0 for a single prompt or a prefix shorter than _MIN_SHARED_PREFIX."""
    if len(prompts) < 2:
        return 0
    limit = min(len(ids) for ids in prompts) - 1
    length = 0
    for column in zip(*prompts, strict=False):
        if length == limit or any(token != column[0] for token in column[1:]):
            break
        length += 1
    return length if length >= _MIN_SHARED_PREFIX else 0


@dataclass
class _Prefix:
    """A prompt prefix every row shares, run once: its length and its batch-size-1 cache."""

    length: int
    cache: DynamicCache


@dataclass
class _Batch:
    """The next forward pass's input tokens and the cache they extend. `mask` (over the
    cache and the inputs) and `positions` (of the inputs) are None when no row is padded."""

    cache: DynamicCache
    inputs: torch.Tensor
    mask: torch.Tensor | None
    positions: torch.Tensor | None

    def advance(self, next_tokens: list[int]) -> None:
        """Make one token a row the next inputs."""
        self.inputs = torch.tensor(next_tokens, dtype=torch.long).unsqueeze(1)
        if self.mask is not None and self.positions is not None:
            self.mask = torch.cat([self.mask, self.mask.new_ones((len(next_tokens), 1))], dim=1)
            self.positions = self.positions[:, -1:] + 1


class _Row:
    """One row of a batched decode: its detokeniser, stop scanner, penalties and counts."""

    def __init__(self, tokenizer: Any, prompt_ids: list[int], params: GenerationParams) -> None:
        self.prompt_tokens = len(prompt_ids)
        self.detok = _IncrementalDecoder(tokenizer, prompt_ids[-_DECODE_CONTEXT_TOKENS:])
        self.scanner = StopScanner(params.stop)
        self.counts = _TokenCounts(params)
        self.generated = 0
        self.unreported = 0  # tokens generated since the last chunk
        self.first_text_at: float | None = None
        self.finished = False

    def push(self, token: int, eos_ids: frozenset[int], start: float) -> StreamChunk | None:
        """Take one sampled token; a chunk when there is text to emit or the row ended."""
        self.generated += 1
        self.unreported += 1
        if token in eos_ids:
            return self.finish("stop", start)
        text = self.scanner.feed(self.detok.push(token))
        if self.scanner.stopped:
            return self.finish("stop", start, text)
        if not text:
            return None
        if self.first_text_at is None:
            self.first_text_at = time.perf_counter()
        tokens, self.unreported = self.unreported, 0
        return StreamChunk(text=text, tokens=tokens)

    def finish(self, reason: FinishReason, start: float, text: str = "") -> StreamChunk:
        self.finished = True
        if not self.scanner.stopped:
            text += self.scanner.feed(self.detok.flush()) + self.scanner.flush()
        now = time.perf_counter()
        if text and self.first_text_at is None:
            self.first_text_at = now
        first = None if self.first_text_at is None else self.first_text_at - start
        usage = Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.generated,
            time_to_first_token_s=first,
            total_s=now - start,
        )
        reason = "stop" if self.scanner.stopped else reason
        return StreamChunk(text=text, usage=usage, finish_reason=reason, tokens=self.unreported)


class _IncrementalDecoder:
    """Turns a token stream into text deltas in O(1) tokenizer work per token.

    Decodes a short sliding window rather than the whole output, and holds back a delta
    that ends in U+FFFD: that is a multi-byte character split across tokens, and emitting
    it would put a replacement character in the user's text.
    """

    def __init__(self, tokenizer: Any, context: list[int]) -> None:
        self._tokenizer = tokenizer
        self._ids = list(context)
        self._prefix = 0
        self._read = len(self._ids)

    def push(self, token: int) -> str:
        self._ids.append(token)
        return self._delta(final=False)

    def flush(self) -> str:
        return self._delta(final=True)

    def _delta(self, *, final: bool) -> str:
        prefix_text = self._decode(self._ids[self._prefix : self._read])
        full_text = self._decode(self._ids[self._prefix :])
        if len(full_text) <= len(prefix_text):
            return ""
        if full_text.endswith(_REPLACEMENT_CHAR) and not final:
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return full_text[len(prefix_text) :]

    def _decode(self, ids: list[int]) -> str:
        text: str = self._tokenizer.decode(ids, skip_special_tokens=True)
        return text
