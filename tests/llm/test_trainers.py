"""The worker's trainers (llm/trainers.py) against TRL's own on the same batches: the same
SFT loss; the same DPO reference columns, eval loss and logged metrics."""

from __future__ import annotations

import pytest

from llm.schemas import PreferenceRow
from tests.llm.training_data import bundled_config, learnable_rows


def test_the_trainer_computes_the_loss_trl_does(settings, db):
    # The worker's trainer takes the model's own loss instead of TRL's fused LM head (faster
    # on a CPU): on the same batch the two must agree.
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from llm.trainers import sft_trainer_class
    from llm.training import base_checkpoint, checkpointing_argument, conversational

    parent = bundled_config()
    path = base_checkpoint(parent)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    data = Dataset.from_list(conversational(parent, learnable_rows()[:4], tokenizer))
    losses = []
    for trainer_class in (SFTTrainer, sft_trainer_class()):
        config = SFTConfig(output_dir=str(settings.VAR_DIR / "sft-loss"), report_to=[],
                           use_cpu=True, per_device_eval_batch_size=4, max_length=64,
                           disable_tqdm=True, bf16=False,
                           **checkpointing_argument(SFTConfig, False))  # fmt: skip
        trainer = trainer_class(model=model, args=config, processing_class=tokenizer,
                                train_dataset=data, eval_dataset=data)  # fmt: skip
        losses.append(trainer.evaluate()["eval_loss"])
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


# TRL 1.16's reference pass asks the model a question transformers 5 renamed (its own code).
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_the_dpo_trainer_computes_the_log_probs_and_loss_trl_does(settings, db):
    # The worker's DPO trainer takes log-probs from the model's own logits instead of TRL's
    # fused LM head, for the reference (computed before training) and the policy: on the
    # same pairs the reference columns, the eval loss and TRL's logged metrics must agree.
    import copy

    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from llm.trainers import dpo_trainer_class
    from llm.training import base_checkpoint, checkpointing_argument, preference_dataset

    parent = bundled_config()
    path = base_checkpoint(parent)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    pairs = [PreferenceRow(prompt=f"Name a colour {i}.", chosen=f"Blue, {i} times.",
                           rejected=f"I will not {i}.") for i in range(4)]  # fmt: skip
    data = preference_dataset(parent, pairs)
    results = []
    for trainer_class in (DPOTrainer, dpo_trainer_class()):
        config = DPOConfig(output_dir=str(settings.VAR_DIR / "dpo-loss"), report_to=[],
                           use_cpu=True, per_device_train_batch_size=2,
                           per_device_eval_batch_size=2, max_length=64, disable_tqdm=True,
                           bf16=False, precompute_ref_log_probs=True,
                           **checkpointing_argument(DPOConfig, False))  # fmt: skip
        trainer = trainer_class(model=copy.deepcopy(model), args=config,
                                processing_class=tokenizer, train_dataset=Dataset.from_list(data),
                                eval_dataset=Dataset.from_list(data))  # fmt: skip
        metrics = trainer.evaluate()
        assert getattr(trainer.model, "_plain_head", False) == (trainer_class is not DPOTrainer)
        results.append((trainer.train_dataset["ref_chosen_logps"],
                        trainer.train_dataset["ref_rejected_logps"], metrics))  # fmt: skip
    (chosen, rejected, stock), (our_chosen, our_rejected, ours) = results
    assert our_chosen == pytest.approx(chosen, rel=1e-4)
    assert our_rejected == pytest.approx(rejected, rel=1e-4)
    for key in ("eval_loss", "eval_logps/chosen", "eval_entropy", "eval_logits/chosen",
                "eval_mean_token_accuracy"):  # fmt: skip
        assert ours[key] == pytest.approx(stock[key], rel=1e-3, abs=1e-4), key
