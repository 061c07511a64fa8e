"""The worker's trainers: TRL's SFTTrainer and DPOTrainer with per-token log-probs and the
loss from the model's own logits, where TRL's chunked "fused" LM head costs more on a CPU
(bench/sft_step.py, bench/dpo_step.py). Imported by the worker only (llm/training.py):
torch and TRL."""

from __future__ import annotations

from typing import Any

import torch


def sft_trainer_class() -> type:
    """TRL's `SFTTrainer`, with the model's own loss on the full logits.

    TRL 1.16 computes the loss through a chunked "fused" LM head that also yields per-token
    entropy and top-1 accuracy for its logs; on a CPU that took a step 1.44x the plain loop
    (bench/sft_step.py, 7 December 2026). The loss is the same mean over completion tokens;
    only those two logged metrics go."""
    from transformers import Trainer
    from trl import SFTTrainer

    class ModelLossSFTTrainer(SFTTrainer):  # type: ignore[misc]
        def compute_loss(
            self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:  # fmt: skip
            inputs["use_cache"] = False
            return Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)  # fmt: skip

    return ModelLossSFTTrainer


def dpo_trainer_class() -> type:
    """TRL's `DPOTrainer`, with per-token log-probs from the model's own logits.

    TRL 1.16 computes them (for the policy each step, and for the reference before training)
    through a chunked "fused" LM head; on a CPU the reference's took 1.28-1.34 s a batch of 4
    pairs against 0.92-0.95 s for a forward and log-softmax (bench/dpo_step.py, 7 December
    2026). The same log-probs and the metrics TRL logs, from the full logits; TRL's loss and
    its handling of the reference are unchanged. Not under LoRA, where TRL's head sits on
    the wrapped base model: there TRL's own stays."""
    from trl import DPOTrainer
    from trl.trainer.utils import FusedCausalLMOutput

    def plain_head(model: Any) -> None:
        if getattr(model, "_plain_head", False) or hasattr(model, "peft_config"):
            return
        fused_forward = model.forward  # TRL's: `fused_lm_head=False` is the model's own

        def forward(*args: Any, fused_lm_head: bool = False, labels: Any = None,
                    **kwargs: Any) -> Any:  # fmt: skip
            if not fused_lm_head:
                return fused_forward(*args, labels=labels, **kwargs)
            kwargs["use_cache"] = False
            logits = fused_forward(*args, **kwargs).logits[:, :-1].float()
            target = labels[:, 1:]
            mask = target != -100
            logps = logits.log_softmax(dim=-1)
            log_probs = logps.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask
            if model._log_probs_only:
                # The reference's pass: TRL reads only its log-probs (its own head computes
                # just those for a separate reference), and the metrics cost three more
                # passes over (tokens × vocabulary) floats, about 0.3 s a batch of 4 here.
                return FusedCausalLMOutput(log_probs=log_probs, label_mask=mask)
            with torch.no_grad():
                entropy = -(logps.exp() * logps).sum(dim=-1) * mask
                mean_logits = logits.mean(dim=-1) * mask
                is_top1 = (logits.argmax(dim=-1) == target) & mask
            return FusedCausalLMOutput(
                loss=-log_probs.sum() / mask.sum().clamp(min=1), log_probs=log_probs,
                entropy=entropy, mean_logits=mean_logits, is_top1=is_top1, label_mask=mask,
            )  # fmt: skip

        model.forward = forward
        model._plain_head = True
        model._log_probs_only = False

    class PlainHeadDPOTrainer(DPOTrainer):  # type: ignore[misc]
        def compute_ref_log_probs(self, model: Any, inputs: dict[str, Any]) -> Any:
            plain_head(model)
            model._log_probs_only = True
            try:
                return super().compute_ref_log_probs(model, inputs)
            finally:
                model._log_probs_only = False

        def compute_loss(self, model: Any, inputs: Any, return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:  # fmt: skip
            plain_head(model)
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)  # fmt: skip

    return PlainHeadDPOTrainer
