"""Local generation with transformers on CPU (or whatever torch finds).

Only the worker process imports this module; it pulls in torch and transformers at import.

Streaming runs our own decode loop instead of `generate` + `TextIteratorStreamer`: the
streamer's thread hand-off delivered ~0.65x of bare `generate` on the 2-core target machine,
while a plain forward loop over a KV cache matches or beats `generate` (no per-step logits
processor stack, logits for the last position only).
"""

from __future__ import annotations

import copy
import inspect
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DynamicCache,
    LogitsProcessor,
    LogitsProcessorList,
)

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
        `params.seed`), so sampled rows differ from each other even with a seed.

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
        width = max(len(ids) for ids in prompts)
        inputs = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in prompts])
        # One unpadded row needs no mask or positions: the model's defaults are exact there.
        padded = any(len(ids) < width for ids in prompts)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts])
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        step = 0

        with torch.inference_mode():
            cache = DynamicCache(config=self.model.config)
            while step < params.max_new_tokens and any(not row.finished for row in rows):
                if time.perf_counter() > deadline:
                    raise self._timeout(params, step)
                kwargs: dict[str, Any] = {self._cache_argument: cache, "use_cache": True}
                if self._pass_logits_to_keep:
                    # Prefill would otherwise project every prompt position onto the vocabulary.
                    kwargs["logits_to_keep"] = 1
                if padded:
                    kwargs.update(attention_mask=mask, position_ids=positions)
                logits = self.model(input_ids=inputs, **kwargs).logits[:, -1].float()
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
                inputs = torch.tensor(next_tokens, dtype=torch.long).unsqueeze(1)
                if padded:
                    mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
                    positions = positions[:, -1:] + 1
        for index, row in enumerate(rows):
            if not row.finished:
                yield RowChunk(index, row.finish("length", start))

    # -- batch ---------------------------------------------------------------------------

    def generate_batch(
        self, chats: Sequence[Sequence[ChatMessage]], *, params: GenerationParams
    ) -> list[Completion]:
        """All chats in one left-padded `generate` call; one Completion per chat, in order.

        `usage.total_s` is the whole batch's wall time (rows finish together), and
        `time_to_first_token_s` is None because nothing is streamed.
        """
        params.validate()
        if not chats:
            return []
        start = time.perf_counter()
        prompts = [self.render_prompt(chat) for chat in chats]
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        prompt_lens = [int(n) for n in enc["attention_mask"].sum(dim=1)]
        self._check_length(max(prompt_lens), params)
        sampling = params.temperature > 0
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "do_sample": sampling,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": sorted(self._eos_ids),
            # generate() stops itself at the deadline; we then report it as a timeout.
            "max_time": params.timeout_s,
        }
        if sampling:
            # Only with sampling: transformers warns about unused flags otherwise.
            gen_kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        if params.stop:
            gen_kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        if params.penalised:
            prompt_width = enc["input_ids"].shape[1]
            gen_kwargs["logits_processor"] = LogitsProcessorList(
                [_PenaltyProcessor(params, prompt_width)]
            )

        # generate() samples from torch's global RNG; fork it so a seed here does not
        # reseed (or get disturbed by) anything else in the process.
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            if params.seed is not None:
                torch.manual_seed(params.seed)
            out = self.model.generate(**enc, **gen_kwargs)
        total_s = time.perf_counter() - start
        new_tokens = out[:, enc["input_ids"].shape[1] :].tolist()
        pad_id = self.tokenizer.pad_token_id

        completions: list[Completion] = []
        for row, prompt_len in zip(new_tokens, prompt_lens, strict=True):
            count = len(row)
            finish: FinishReason = "length"
            for i, tok in enumerate(row):
                if tok in self._eos_ids:
                    # Rows that finished early are padded (often with EOS) up to the longest.
                    count, finish = i + 1, "stop"
                    break
                if tok == pad_id:
                    count, finish = i, "stop"  # ended by a stop string, then padded
                    break
            text = self.tokenizer.decode(row[:count], skip_special_tokens=True)
            scanner = StopScanner(params.stop)
            text = scanner.feed(text) + scanner.flush()
            if scanner.stopped:
                finish = "stop"
            if finish == "length" and count < params.max_new_tokens:
                # Neither finished nor out of budget: generate() gave up at max_time.
                raise self._timeout(params, count)
            usage = Usage(
                prompt_tokens=prompt_len,
                completion_tokens=count,
                time_to_first_token_s=None,
                total_s=total_s,
            )
            completions.append(Completion(text=text, usage=usage, finish_reason=finish))
        return completions

    # -- helpers -------------------------------------------------------------------------

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
        for first in range(0, len(by_length), _CHOICE_BATCH):
            if time.perf_counter() > deadline:
                raise self._timeout(params, 0)
            part = by_length[first : first + _CHOICE_BATCH]
            probs = self._next_token_probabilities([prompts[n] for n in part])
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
        """Each option's possible first tokens: as the reply's start, and after a space."""
        variants: list[list[int]] = []
        for option in options:
            ids = set()
            for spelling in (option, " " + option):
                tokens = self.tokenizer(spelling, add_special_tokens=False)["input_ids"]
                if tokens:
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

    def _next_token_probabilities(self, prompts: list[list[int]]) -> torch.Tensor:
        """Softmax over the vocabulary at each prompt's end: [len(prompts), vocab]."""
        self._check_length(max(len(ids) for ids in prompts), GenerationParams(max_new_tokens=1))
        pad_id = int(self.tokenizer.pad_token_id)
        width = max(len(ids) for ids in prompts)
        inputs = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in prompts])
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts])
        kwargs: dict[str, Any] = {"attention_mask": mask}
        kwargs["position_ids"] = (mask.cumsum(dim=1) - 1).clamp(min=0)
        if self._pass_logits_to_keep:
            kwargs["logits_to_keep"] = 1
        with torch.inference_mode():
            logits = self.model(input_ids=inputs, **kwargs).logits[:, -1].float()
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


class _PenaltyProcessor(LogitsProcessor):
    """The same penalties inside `generate` (batched rows), counting only generated tokens:
    with left padding every row's prompt ends at the same column."""

    def __init__(self, params: GenerationParams, prompt_width: int) -> None:
        self.params = params
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = input_ids[:, self.prompt_width :]
        counts = torch.zeros_like(scores)
        counts.scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
        return _penalties(scores, counts, self.params)  # type: ignore[return-value]


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
