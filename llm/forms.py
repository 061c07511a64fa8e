from __future__ import annotations

import os
from typing import Any

from django import forms
from django.conf import settings

from llm.backends.base import GenerationError
from llm.backends.bundled import BUNDLED_MODEL_ID, bundled_gguf_path, resolve_model_path
from llm.models import Backend, ModelConfig
from llm.probe import openai_server_probe
from llm.schemas import SFTHyperparameters

MAX_STOP_SEQUENCES = 4
MAX_TRIAL_PROMPT_CHARS = 4000


class StopSequencesField(forms.CharField):
    """One stop sequence per line; stored as a JSON list of strings."""

    widget = forms.Textarea(attrs={"rows": 2})

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        if isinstance(value, list):
            return value
        lines = [line for line in str(value or "").splitlines() if line.strip()]
        if len(lines) > MAX_STOP_SEQUENCES:
            raise forms.ValidationError(f"At most {MAX_STOP_SEQUENCES} stop sequences.")
        return [line.replace("\\n", "\n") for line in lines]


class ModelConfigForm(forms.ModelForm):
    base_url = forms.URLField(
        required=False,
        assume_scheme="http",  # inference servers on a LAN or loopback rarely speak TLS
        help_text=ModelConfig._meta.get_field("base_url").help_text,
    )
    stop_sequences = StopSequencesField(
        required=False, help_text="one per line; write \\n for a newline"
    )

    class Meta:
        model = ModelConfig
        fields = [
            "name", "backend", "model", "base_url", "api_key_env", "system_prompt",
            "temperature", "top_p", "max_new_tokens", "frequency_penalty", "presence_penalty",
            "seed", "stop_sequences", "timeout_s",
        ]  # fmt: skip
        widgets = {"system_prompt": forms.Textarea(attrs={"rows": 3})}

    # Left empty means off: clients written before the penalties existed still validate.
    PENALTIES = ("frequency_penalty", "presence_penalty")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in self.PENALTIES:
            self.fields[name].required = False

    def clean_frequency_penalty(self) -> float:
        return self.cleaned_data["frequency_penalty"] or 0.0

    def clean_presence_penalty(self) -> float:
        return self.cleaned_data["presence_penalty"] or 0.0

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        if data["backend"] == Backend.TRANSFORMERS:
            self._check_local_model(data)
        else:
            self._check_server(data)
        return data

    def _check_local_model(self, data: dict[str, Any]) -> None:
        if data.get("base_url"):
            self.add_error("base_url", "Only the openai backend uses a base URL.")
        model = data["model"].strip()
        try:
            if model == BUNDLED_MODEL_ID:
                bundled_gguf_path()  # conversion waits for the worker's first load
            else:
                resolve_model_path(model, models_dir=settings.LLM_MODELS_DIR)
        except GenerationError as error:
            self.add_error("model", error.message)

    def _check_server(self, data: dict[str, Any]) -> None:
        if not data.get("base_url"):
            self.add_error("base_url", "The openai backend needs the server's base URL.")
            return
        key_name = data.get("api_key_env", "")
        if key_name and key_name not in os.environ:
            self.add_error("api_key_env", f"The environment variable {key_name} is not set.")
            return
        problem = openai_server_probe(
            data["base_url"], api_key=os.environ.get(key_name) if key_name else None
        )
        if problem:
            self.add_error("base_url", problem)


class TrialForm(forms.Form):
    prompt = forms.CharField(
        max_length=MAX_TRIAL_PROMPT_CHARS,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Ask the model something…"}),
    )

    def clean_prompt(self) -> str:
        prompt: str = self.cleaned_data["prompt"]
        if not prompt.strip():
            raise forms.ValidationError("Write a prompt first.")
        return prompt


class TrainingStartForm(forms.Form):
    """What a researcher chooses when starting a fine-tune: the base, the new config's name
    and the main hyperparameters (the rest keep llm.schemas.SFTHyperparameters' defaults)."""

    base = forms.ModelChoiceField(
        queryset=ModelConfig.objects.filter(backend=Backend.TRANSFORMERS),
        help_text="a local transformers model; the new config copies its sampling settings",
    )
    name = forms.CharField(max_length=100, help_text="what the new model config will be called")
    learning_rate = forms.FloatField(initial=5e-5, min_value=1e-7, max_value=1e-2)
    epochs = forms.IntegerField(initial=1, min_value=1, max_value=20)
    max_steps = forms.IntegerField(
        initial=0, min_value=0, max_value=100_000, required=False,
        help_text="stop after this many steps (0 or empty: all epochs)",
    )  # fmt: skip
    batch_size = forms.IntegerField(initial=8, min_value=1, max_value=128)
    max_length = forms.IntegerField(
        initial=256, min_value=16, max_value=4096, help_text="tokens a row is cut to"
    )

    def hyperparameters(self) -> SFTHyperparameters:
        data = self.cleaned_data
        return SFTHyperparameters(
            learning_rate=data["learning_rate"], epochs=data["epochs"],
            max_steps=data.get("max_steps") or 0, batch_size=data["batch_size"],
            max_length=data["max_length"],
        )  # fmt: skip
