"""Batched generation with left padding on a tiny random Llama."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lora_study.model.generation import generate, left_pad
from lora_study.model.loading import load_model, load_tokenizer, resolve_device, resolve_dtype, weights_dir
from lora_study.model.prompts import Prompt, PromptBuilder

SETTINGS = {"max_new_tokens": 5, "greedy": True, "temperature": 1.0, "top_p": 1.0, "seed": 0}


def test_left_pad_right_aligns_prompts() -> None:
    prompts = [
        Prompt(input_ids=[5, 6, 7], input_text="", truncated=False),
        Prompt(input_ids=[8], input_text="", truncated=False),
    ]
    ids, mask = left_pad(prompts=prompts, pad_id=0, device="cpu")
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_padding_does_not_change_the_next_token_logits(tiny_model_dir: Path) -> None:
    model = load_model(model_dir=tiny_model_dir, device="cpu", dtype=torch.float32)
    short = Prompt(input_ids=[100, 200, 300], input_text="", truncated=False)
    long = Prompt(input_ids=[400, 500, 600, 700, 800, 900], input_text="", truncated=False)
    ids, mask = left_pad(prompts=[long, short], pad_id=0, device="cpu")
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)  # what generate() derives from the mask
    with torch.inference_mode():
        batched = model(input_ids=ids, attention_mask=mask, position_ids=position_ids).logits[1, -1]
        alone = model(input_ids=torch.tensor([short.input_ids])).logits[0, -1]
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)


def test_generate_returns_only_new_tokens_in_prompt_order(tiny_model_dir: Path) -> None:
    tokenizer = load_tokenizer(tiny_model_dir)
    model = load_model(model_dir=tiny_model_dir, device="cpu", dtype=torch.float32)
    builder = PromptBuilder(tokenizer=tokenizer, instruction="Summarize.", chat_template=True, max_input_tokens=128)
    texts = ["A short input.", "A much longer input " * 10, "Medium length input here."]
    prompts = [builder.build(text) for text in texts]
    batched = generate(model=model, tokenizer=tokenizer, prompts=prompts, settings=SETTINGS, batch_size=2)
    assert [g.prompt_tokens for g in batched] == [len(p.input_ids) for p in prompts]
    for generation in batched:
        assert 0 <= generation.generated_tokens <= SETTINGS["max_new_tokens"]
        assert "Summarize." not in generation.text
    # The same prompts one at a time give the same greedy text: batching and order are invisible.
    single = [
        generate(model=model, tokenizer=tokenizer, prompts=[p], settings=SETTINGS, batch_size=1)[0] for p in prompts
    ]
    assert [g.text for g in single] == [g.text for g in batched]


def test_device_and_dtype_resolution() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_dtype("auto", device="cpu") == torch.float32
    assert resolve_dtype("bfloat16", device="cpu") == torch.bfloat16
    assert resolve_dtype("float16", device="cuda") == torch.float16
    with pytest.raises(RuntimeError, match="model.dtype is float16 but this job runs on the CPU"):
        resolve_dtype("float16", device="cpu")  # orders of magnitude slower there (tests/test_gpu_defaults.py)
    if not torch.cuda.is_available():
        assert resolve_device("auto") == "cpu"
        with pytest.raises(RuntimeError, match="model.device is `cuda`"):
            resolve_device("cuda")


def test_missing_manifest_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no model manifest"):
        weights_dir(tmp_path)


def with_random_adapter(model):
    """The model with a LoRA adapter whose B is not zero, so that it changes the outputs."""
    from lora_study.core.grid import VariantSpec
    from lora_study.model.adapters import attach_adapter

    spec = VariantSpec(kind="lora", train_size=1, seed=1, learning_rate=1e-3, rank=4, alpha=8.0, targets="qv")
    model = attach_adapter(model=model, spec=spec).eval()
    torch.manual_seed(1)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            parameter.data.normal_(std=0.5)
    return model


def reference_loop(*, model, tokenizer, prompts, settings) -> list:
    """The reference studies' loop: one prompt per generate() call, no padding, transformers'
    own cache."""
    return [
        generate(model=model, tokenizer=tokenizer, prompts=[p], settings=settings, batch_size=1, cache="dynamic")[0]
        for p in prompts
    ]


@pytest.mark.parametrize("cache", ["prefilled", "dynamic", "static"])
@pytest.mark.parametrize("adapter", [False, True], ids=["base", "peft"])
def test_whole_set_at_once_gives_the_per_example_predictions(tiny_model_dir: Path, cache: str, adapter: bool) -> None:
    """Every prompt in one left-padded call, with the prefilled, the growing or the static
    cache, on the base model and on a PEFT model (an adapter whose B is not zero, so it
    changes the outputs)."""
    tokenizer = load_tokenizer(tiny_model_dir)
    model = load_model(model_dir=tiny_model_dir, device="cpu", dtype=torch.float32)
    if adapter:
        model = with_random_adapter(model)
    builder = PromptBuilder(tokenizer=tokenizer, instruction="Summarize.", chat_template=True, max_input_tokens=128)
    texts = [
        "One.",
        "A much longer input " * 12,
        "Medium length input here, with more words.",
        "Two more words, then some",
        "x " * 40,
    ]
    prompts = [builder.build(text) for text in texts]
    settings = {**SETTINGS, "max_new_tokens": 8}
    expected = reference_loop(model=model, tokenizer=tokenizer, prompts=prompts, settings=settings)
    assert len({len(p.input_ids) for p in prompts}) == len(prompts)  # every row padded differently
    batched = generate(
        model=model, tokenizer=tokenizer, prompts=prompts, settings=settings, batch_size="all", cache=cache
    )
    assert batched == expected
    assert sum(g.generated_tokens for g in batched) > len(prompts), batched
    # The random base mostly emits tokens that decode to nothing; the adapter's outputs have text.
    assert any(g.text for g in batched) or not adapter


def test_speed_options_map_the_config() -> None:
    from lora_study.model.generation import batch_count, speed_options

    assert speed_options(cache="dynamic", compile_mode="false") == {"disable_compile": True}
    assert speed_options(cache="prefilled", compile_mode="auto") == {}
    assert speed_options(cache="static", compile_mode="auto") == {"cache_implementation": "static"}
    forced = speed_options(cache="static", compile_mode="true")
    assert forced["compile_config"]._compile_all_devices is True
    with pytest.raises(ValueError, match="needs evaluation.cache: static"):
        speed_options(cache="dynamic", compile_mode="true")
    assert batch_count("all", 20) == 20 and batch_count(8, 20) == 8 and batch_count("all", 0) == 1


@pytest.mark.slow
def test_compiled_static_cache_gives_the_per_example_predictions(tiny_model_dir: Path) -> None:
    """evaluation.compile: true on the CPU (torch.compile of the decoding step; about a minute of
    compilation for this 2-layer model) changes no prediction."""
    tokenizer = load_tokenizer(tiny_model_dir)
    model = load_model(model_dir=tiny_model_dir, device="cpu", dtype=torch.float32)
    builder = PromptBuilder(tokenizer=tokenizer, instruction="Summarize.", chat_template=True, max_input_tokens=128)
    prompts = [
        builder.build(text) for text in ["One.", "A much longer input " * 12, "Medium length input, more words."]
    ]
    settings = {**SETTINGS, "max_new_tokens": 8}
    expected = reference_loop(model=model, tokenizer=tokenizer, prompts=prompts, settings=settings)
    compiled = generate(
        model=model,
        tokenizer=tokenizer,
        prompts=prompts,
        settings=settings,
        batch_size="all",
        cache="static",
        compile_mode="true",
    )
    assert compiled == expected
