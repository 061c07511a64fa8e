"""The TRL export is something TRL trains on: datasets loads it, RewardTrainer takes a step."""

import io

import pytest
from django.conf import settings

from annotations.exports import ExportSpec, export_plan, export_write
from tests.annotations.factories import labelled_queue


def write_export(queue, path, fmt):
    out = io.BytesIO()
    export_write(export_plan(ExportSpec(queues=[queue.pk], format=fmt)), out)
    path.write_bytes(out.getvalue())


@pytest.mark.filterwarnings("ignore:`gradient_checkpointing` is deprecated:FutureWarning")
@pytest.mark.parametrize("fmt", ["trl", "trl_conversational"])
def test_reward_trainer_trains_a_step_on_the_export(db, tmp_path, fmt):
    datasets = pytest.importorskip("datasets")
    trl = pytest.importorskip("trl")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from llm.backends.bundled import bundled_checkpoint

    queue, _ = labelled_queue()
    path = tmp_path / "prefs.jsonl"
    write_export(queue, path, fmt)
    dataset = datasets.load_dataset(
        "json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert dataset.num_rows == 8
    assert {"prompt", "chosen", "rejected", "item_id", "annotator"} <= set(dataset.column_names)

    # SmolLM2's tokenizer has an end-of-sequence token, which TRL appends to raw text.
    checkpoint = bundled_checkpoint(settings.LLM_MODELS_DIR)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    config = trl.RewardConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=1,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        learning_rate=1e-5,
        max_length=128,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        dataloader_num_workers=0,
        dataset_num_proc=None,
        seed=0,
    )
    trainer = trl.RewardTrainer(
        model=model, args=config, train_dataset=dataset, processing_class=tokenizer
    )
    before = next(p for n, p in model.named_parameters() if "score" in n).detach().clone()
    result = trainer.train()
    after = next(p for n, p in model.named_parameters() if "score" in n).detach()
    assert result.global_step == 1
    assert result.training_loss > 0
    assert not (before == after).all()  # the head actually learned something from the pairs
