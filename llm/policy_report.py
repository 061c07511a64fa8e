"""After a policy run: how far the new policy moved from its parent, and what the proxy
reward model makes of it, on held-out prompts. Run by the worker only (imports torch).

KL(new ‖ parent) is estimated from the new policy's own samples (temperature 1, no top-k or
top-p, so they are draws from the policy the log-probabilities describe):
    KL ≈ mean over samples y ~ p_new(·|x) of  log p_new(y|x) − log p_parent(y|x),
each log-probability the sum of the completion's token log-probabilities under that model,
computed by a forward pass of each model on the same token ids. The proxy reward, and the
gold where the run names a gold reward-model version, is the registered scorer's
(llm/rewarders.py) on the new policy's samples and on the parent's, drawn the same way."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from llm.generation import chat_messages
from llm.models import ModelConfig
from llm.rewarders import run_rewards
from llm.schemas import PolicyReport, ReportSample
from llm.stats import BOOTSTRAP_METHOD, bootstrap_interval, mean_of_prompt_means

REPORT_MAX_PROMPTS = 16
SAMPLES_PER_PROMPT = 4
MAX_NEW_TOKENS = 64
BATCH_ROWS = 16


def policy_report(
    *,
    parent: ModelConfig,
    parent_path: str,
    new_model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    seed: int,
    reward_version: int | None,
    reward_label: str = "",
    gold_version: int | None = None,
    gold_label: str = "",
    renew: Callable[[], None] = lambda: None,
) -> PolicyReport:
    """The report on up to REPORT_MAX_PROMPTS held-out prompts, SAMPLES_PER_PROMPT samples
    each, at most min(parent's max_new_tokens, MAX_NEW_TOKENS) tokens a sample. `renew` is
    called between batches (the run's lease)."""
    from transformers import AutoModelForCausalLM

    started = time.monotonic()
    prompts = list(prompts)[:REPORT_MAX_PROMPTS]
    max_new = max(1, min(parent.max_new_tokens, MAX_NEW_TOKENS))
    parent_model = AutoModelForCausalLM.from_pretrained(parent_path, local_files_only=True,
                                                        dtype=torch.float32)  # fmt: skip
    new_model.eval()
    parent_model.eval()
    texts = [_render(parent, prompt, tokenizer) for prompt in prompts]
    rows = [text for text in texts for _ in range(SAMPLES_PER_PROMPT)]
    kls: list[float] = []
    new_samples: list[str] = []
    parent_samples: list[str] = []
    for start in range(0, len(rows), BATCH_ROWS):
        batch = rows[start : start + BATCH_ROWS]
        ids, mask, completion = _sample(new_model, tokenizer, batch, max_new, seed + start)
        new_lp = _completion_logprob(new_model, ids, mask, completion)
        parent_lp = _completion_logprob(parent_model, ids, mask, completion)
        kls.extend((new_lp - parent_lp).tolist())
        new_samples.extend(_decode(tokenizer, ids, completion))
        renew()
        ids, _, completion = _sample(parent_model, tokenizer, batch, max_new, seed + start)
        parent_samples.extend(_decode(tokenizer, ids, completion))
        renew()
    del parent_model
    by_prompt = [kls[i : i + SAMPLES_PER_PROMPT] for i in range(0, len(kls), SAMPLES_PER_PROMPT)]
    kl_interval = bootstrap_interval(by_prompt, seed=seed)
    sampled_for = [p for p in prompts for _ in range(SAMPLES_PER_PROMPT)]
    fields: dict[str, Any] = {}
    for prefix, version, label in (("proxy", reward_version, reward_label),
                                   ("gold", gold_version, gold_label)):  # fmt: skip
        if version is not None:
            fields |= _rewards_compared(prefix, version, label, sampled_for, new_samples,
                                        parent_samples, seed=seed)  # fmt: skip
    triples = zip(sampled_for, new_samples, parent_samples, strict=True)
    samples = [ReportSample(prompt=p, new=new, parent=old) for p, new, old in triples]
    return PolicyReport(
        samples=samples, prompts=len(prompts), samples_per_prompt=SAMPLES_PER_PROMPT,
        kl_mean=round(mean_of_prompt_means(by_prompt), 5),
        kl_low=round(kl_interval[0], 5) if kl_interval else None,
        kl_high=round(kl_interval[1], 5) if kl_interval else None,
        kl_method=BOOTSTRAP_METHOD, seconds=round(time.monotonic() - started, 2), **fields,
    )  # fmt: skip


def _rewards_compared(
    prefix: str,
    version: int,
    label: str,
    prompts: list[str],
    new: list[str],
    parent: list[str],
    *,
    seed: int,
) -> dict[str, Any]:
    """Both policies' samples scored by one reward-model version: the means and a bootstrap
    interval over prompts of new − parent (the samples of one prompt pair up in order)."""
    new_r = run_rewards(version, list(zip(prompts, new, strict=True)))
    parent_r = run_rewards(version, list(zip(prompts, parent, strict=True)))
    diff = [a - b for a, b in zip(new_r, parent_r, strict=True)]
    step = SAMPLES_PER_PROMPT
    interval = bootstrap_interval([diff[i : i + step] for i in range(0, len(diff), step)],
                                  seed=seed)  # fmt: skip
    return {
        f"{prefix}_reward_version": version, f"{prefix}_reward_label": label,
        f"{prefix}_new": round(sum(new_r) / len(new_r), 5),
        f"{prefix}_parent": round(sum(parent_r) / len(parent_r), 5),
        f"{prefix}_diff_low": round(interval[0], 5) if interval else None,
        f"{prefix}_diff_high": round(interval[1], 5) if interval else None,
    }  # fmt: skip


def _render(parent: ModelConfig, prompt: str, tokenizer: Any) -> str:
    messages = [dict(m) for m in chat_messages(parent, prompt)]
    if getattr(tokenizer, "chat_template", None):
        text: str = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                  tokenize=False)  # fmt: skip
        return text
    return "\n".join([*(f"{m['role']}: {m['content']}" for m in messages), "assistant:"])


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = list(ids) if isinstance(ids, list | tuple) else [ids] if ids is not None else []
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return sorted(set(ids))


@torch.no_grad()
def _sample(
    model: Any, tokenizer: Any, texts: list[str], max_new: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sampled rows: (token ids, attention mask over them, mask of the completion tokens:
    up to and including the first end-of-sequence token)."""
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # every row ends at its prompt
    try:
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    torch.manual_seed(seed)
    out = model.generate(
        **encoded, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
        max_new_tokens=max_new, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    width = encoded["input_ids"].shape[1]
    generated = out[:, width:]
    is_eos = torch.isin(generated, torch.tensor(_eos_ids(model, tokenizer), dtype=torch.long))
    seen = is_eos.long().cumsum(dim=1)
    completion = (seen == 0) | ((seen == 1) & is_eos)
    mask = torch.cat([encoded["attention_mask"], completion.long()], dim=1)
    full_completion = torch.cat([torch.zeros_like(encoded["attention_mask"]).bool(), completion],
                                dim=1)  # fmt: skip
    return out, mask, full_completion


@torch.no_grad()
def _completion_logprob(
    model: Any, ids: torch.Tensor, mask: torch.Tensor, completion: torch.Tensor
) -> torch.Tensor:
    """Each row's summed log-probability of its completion tokens under `model` (positions
    counted from each row's first real token, as generation counted them)."""
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits.float()
    logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
    token = logprobs.gather(2, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (token * completion[:, 1:].float()).sum(dim=1)


def _decode(tokenizer: Any, ids: torch.Tensor, completion: torch.Tensor) -> list[str]:
    return [
        tokenizer.decode(row[keep], skip_special_tokens=True).strip()
        for row, keep in zip(ids, completion, strict=True)
    ]
