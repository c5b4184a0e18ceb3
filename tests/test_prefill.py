"""The prefilled KV cache (evaluation.cache: prefilled) on a tiny random Llama: the keys and
values it holds are those of the left-padded batch, and generation with it equals
transformers' own cache, greedy and sampled."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import DynamicCache, MistralConfig, MistralForCausalLM

from lora_study.model.generation import generate, left_pad
from lora_study.model.loading import load_model, load_tokenizer
from lora_study.model.prefill import PreallocatedLayer, prefilled_cache, shared_opening, supports_prefill
from lora_study.model.prompts import Prompt, PromptBuilder


def prompt(ids: list[int]) -> Prompt:
    return Prompt(input_ids=ids, input_text="", truncated=False)


def test_shared_opening_leaves_every_prompt_its_last_token() -> None:
    assert shared_opening([prompt([1, 2, 3, 4]), prompt([1, 2, 5, 6, 7])]) == 2
    assert shared_opening([prompt([1, 2, 3]), prompt([1, 2, 3, 4])]) == 2  # the shorter keeps its last token
    assert shared_opening([prompt([9, 2]), prompt([1, 2])]) == 0
    assert shared_opening([prompt([1, 2, 3])]) == 2


@pytest.mark.parametrize("rows_per_pass", [1, 2, 3], ids=["alone", "pairs", "one-pass"])
def test_cache_holds_the_padded_batch_keys_and_values(tiny_model_dir: Path, rows_per_pass: int) -> None:
    """Every real position of every row: the prompts prefilled after their shared opening, one
    by one or right-padded together, give the keys and values of one left-padded forward pass,
    and padding columns stay zero (the attention mask hides them)."""
    model = load_model(model_dir=tiny_model_dir, device="cpu", dtype=torch.float32)
    prompts = [prompt([7, 8, 9, 10, 11, 12, 13]), prompt([7, 8, 9, 40, 41]), prompt([7, 8, 9, 50, 51, 52, 53, 54])]
    cache = prefilled_cache(model=model, prompts=prompts, new_tokens=3, rows_per_pass=rows_per_pass)
    ids, mask = left_pad(prompts=prompts, pad_id=0, device="cpu")
    reference = DynamicCache(config=model.config)
    with torch.inference_mode():
        model(
            input_ids=ids[:, :-1],
            attention_mask=mask[:, :-1],
            position_ids=(mask[:, :-1].cumsum(-1) - 1).clamp(min=0),
            past_key_values=reference,
        )
    width = ids.shape[1]
    for layer, expected in zip(cache.layers, reference.layers, strict=True):
        assert layer.get_seq_length() == width - 1 and layer.capacity == width + 3
        for row, p in enumerate(prompts):
            start = width - len(p.input_ids)
            torch.testing.assert_close(layer.keys[row, :, start:], expected.keys[row, :, start:], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(
                layer.values[row, :, start:], expected.values[row, :, start:], atol=1e-5, rtol=1e-5
            )
            assert not layer.keys[row, :, :start].any()


def test_a_full_cache_is_an_error_not_a_silent_overwrite() -> None:
    layer = PreallocatedLayer(rows=1, capacity=3)
    layer.update(torch.ones(1, 2, 2, 4), torch.ones(1, 2, 2, 4))
    keys, _ = layer.update(torch.full((1, 2, 1, 4), 2.0), torch.ones(1, 2, 1, 4))
    assert keys[0, 0, :, 0].tolist() == [1.0, 1.0, 2.0]
    with pytest.raises(RuntimeError, match="4 positions asked of 3"):
        layer.update(torch.ones(1, 2, 1, 4), torch.ones(1, 2, 1, 4))


def test_sampled_generation_equals_the_dynamic_cache(tiny_model_dir: Path) -> None:
    """Sampling with the same seed draws the same tokens: the prefill consumes no random numbers."""
    tokenizer = load_tokenizer(tiny_model_dir)
    model = load_model(model_dir=tiny_model_dir, device="cpu", dtype=torch.float32)
    builder = PromptBuilder(tokenizer=tokenizer, instruction="Summarize.", chat_template=True, max_input_tokens=128)
    prompts = [builder.build(text) for text in ["One.", "A much longer input " * 12, "Medium input, more words."]]
    settings = {"max_new_tokens": 8, "greedy": False, "temperature": 1.0, "top_p": 0.9, "seed": 3}
    runs = {
        cache: generate(
            model=model, tokenizer=tokenizer, prompts=prompts, settings=settings, batch_size="all", cache=cache
        )
        for cache in ("prefilled", "dynamic")
    }
    assert runs["prefilled"] == runs["dynamic"]
    assert sum(g.generated_tokens for g in runs["prefilled"]) > len(prompts)


def test_sliding_window_models_fall_back_to_the_dynamic_cache(tiny_model_dir: Path) -> None:
    """A sliding-window layer keeps only its window, so positions cannot be copied one by one:
    such a model generates with transformers' cache, and gives what that cache gives."""
    tokenizer = load_tokenizer(tiny_model_dir)
    torch.manual_seed(0)
    config = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        sliding_window=16,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = MistralForCausalLM(config).eval()
    assert not supports_prefill(model)
    assert supports_prefill(load_model(model_dir=tiny_model_dir, device="cpu", dtype=torch.float32))
    prompts = [prompt(list(range(100, 130))), prompt(list(range(200, 210)))]
    settings = {"max_new_tokens": 4, "greedy": True, "temperature": 1.0, "top_p": 1.0, "seed": 0}
    fallback = generate(model=model, tokenizer=tokenizer, prompts=prompts, settings=settings, batch_size="all")
    dynamic = generate(
        model=model, tokenizer=tokenizer, prompts=prompts, settings=settings, batch_size="all", cache="dynamic"
    )
    assert fallback == dynamic


@pytest.mark.parametrize("precision", ["int8-dynamic", "int8", "int4"])
def test_quantised_models_generate_as_with_the_dynamic_cache(tiny_model_dir: Path, precision: str) -> None:
    """Quantisation quality generates through the same path: the prefilled cache changes no
    greedy prediction of torch's dynamic int8 or bitsandbytes' int8 and 4-bit models."""
    from lora_study.core.config import load_config, precision_options
    from lora_study.stages.quantise.quantise import load_at_precision

    quantisation = load_config(Path(__file__).resolve().parents[1] / "config.yaml")["quantisation"]
    model = load_at_precision(
        model_dir=tiny_model_dir,
        precision=precision,
        model={"device": "cpu", "dtype": "auto"},
        options=precision_options(precision, quantisation),
    ).model
    tokenizer = load_tokenizer(tiny_model_dir)
    builder = PromptBuilder(tokenizer=tokenizer, instruction="Summarize.", chat_template=True, max_input_tokens=128)
    prompts = [builder.build(text) for text in ["One.", "A much longer input " * 12, "Medium input, more words."]]
    settings = {"max_new_tokens": 6, "greedy": True, "temperature": 1.0, "top_p": 1.0, "seed": 0}
    runs = [
        generate(model=model, tokenizer=tokenizer, prompts=prompts, settings=settings, batch_size=size, cache=cache)
        for size, cache in (("all", "prefilled"), (1, "dynamic"))
    ]
    assert runs[0] == runs[1]


def test_one_pass_prefill_generates_the_per_example_predictions(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The accelerators' prefill (every prompt in one right-padded pass), run here on the CPU,
    gives the greedy predictions of one prompt per generate() call."""
    import lora_study.model.generation as generation
    from lora_study.model import prefill

    def one_pass(**kwargs):
        return prefill.prefilled_cache(**{**kwargs, "rows_per_pass": len(kwargs["prompts"])})

    tokenizer = load_tokenizer(tiny_model_dir)
    model = load_model(model_dir=tiny_model_dir, device="cpu", dtype=torch.float32)
    builder = PromptBuilder(tokenizer=tokenizer, instruction="Summarize.", chat_template=True, max_input_tokens=128)
    texts = ["One.", "A much longer input " * 12, "Medium length input here, with more words.", "x " * 40]
    prompts = [builder.build(text) for text in texts]
    settings = {"max_new_tokens": 8, "greedy": True, "temperature": 1.0, "top_p": 1.0, "seed": 0}
    expected = [
        generate(model=model, tokenizer=tokenizer, prompts=[p], settings=settings, batch_size=1, cache="dynamic")[0]
        for p in prompts
    ]
    monkeypatch.setattr(generation, "prefilled_cache", one_pass)
    assert generate(model=model, tokenizer=tokenizer, prompts=prompts, settings=settings, batch_size="all") == expected
