"""The greedy loop of the prefilled path (lora_study.model.greedy) and the model's own generation
defaults kept out of every path (generation.without_model_defaults), on a tiny random Llama."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_generation import reference_loop, with_random_adapter
from transformers import GenerationConfig

import lora_study.model.greedy as greedy
from lora_study.model.generation import generate, generation_config, without_model_defaults
from lora_study.model.loading import load_model, load_tokenizer
from lora_study.model.prefill import PreallocatedLayer, prefilled_cache
from lora_study.model.prompts import PromptBuilder

SETTINGS = {"max_new_tokens": 8, "greedy": True, "temperature": 1.0, "top_p": 1.0, "seed": 0}
TEXTS = ["A much longer input " * 12, "One.", "Medium length input here, with more words.", "x " * 40]


def tiny(tiny_model_dir: Path, *, adapter: bool, varied: bool = False):
    """The tiny model (with a random adapter: test_generation.with_random_adapter), its
    tokenizer and the TEXTS' prompts. `varied`: projections drawn wider, so that the tokens
    vary from step to step (at its initial scale the random model repeats one token)."""
    tokenizer = load_tokenizer(tiny_model_dir)
    model = load_model(model_dir=tiny_model_dir, device="cpu", dtype=torch.float32)
    if varied:
        torch.manual_seed(2)
        for name, parameter in model.named_parameters():
            if name.endswith("proj.weight"):
                parameter.data.normal_(std=0.3)
    if adapter:
        model = with_random_adapter(model)
    builder = PromptBuilder(tokenizer=tokenizer, instruction="Summarize.", chat_template=True, max_input_tokens=128)
    return model, tokenizer, [builder.build(text) for text in TEXTS]


def tokens_alone(*, model, prompt, config: GenerationConfig) -> list[int]:
    """What transformers' generate() gives one prompt, as token ids."""
    ids = torch.tensor([prompt.input_ids])
    return model.generate(input_ids=ids, generation_config=config)[0, ids.shape[1] :].tolist()


def staggered_stops(*, model, prompts) -> set[int]:
    """Stop tokens that end the rows at different steps, the longest prompt's (the first of
    TEXTS) first: the token the first prompt generates at step 1 and the third at step 4, when
    nothing stops them."""
    free = GenerationConfig(max_new_tokens=SETTINGS["max_new_tokens"], do_sample=False, eos_token_id=[], pad_token_id=0)
    tokens = [tokens_alone(model=model, prompt=p, config=free) for p in prompts]
    return {tokens[0][1], tokens[2][4]}


def all_at_once(*, model, tokenizer, prompts, transformers_loop: bool) -> list:
    """Every prompt in one call, decoded by the greedy loop or by transformers' generate()."""
    return generate(
        model=model,
        tokenizer=tokenizer,
        prompts=prompts,
        settings=SETTINGS,
        batch_size="all",
        transformers_loop=transformers_loop,
    )


def test_keep_drops_rows_and_leading_columns() -> None:
    layer = PreallocatedLayer(rows=3, capacity=5)
    keys = torch.arange(3 * 4, dtype=torch.float32).reshape(3, 1, 4, 1)
    layer.update(keys, keys + 100)
    layer.keep(rows=torch.tensor([0, 2]), first_column=1)
    assert layer.keys[:, 0, :, 0].tolist() == [[1, 2, 3], [9, 10, 11]]
    assert layer.values[:, 0, :, 0].tolist() == [[101, 102, 103], [109, 110, 111]]
    assert (layer.get_seq_length(), layer.capacity) == (3, 4)
    written, _ = layer.update(torch.full((2, 1, 1, 1), -1.0), torch.zeros(2, 1, 1, 1))
    assert written[:, 0, :, 0].tolist() == [[1, 2, 3, -1], [9, 10, 11, -1]]


@pytest.mark.parametrize("adapter", [False, True], ids=["base", "peft"])
def test_rows_leaving_at_their_stop_tokens_change_no_prediction(
    tiny_model_dir: Path, adapter: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stop tokens chosen so that the rows end at different steps, the longest prompt's first
    (so the batch loses rows and leading columns): the greedy loop gives the per-example
    loop's predictions, and transformers' generate() on the same cache does too."""
    model, tokenizer, prompts = tiny(tiny_model_dir, adapter=adapter, varied=True)
    stops = staggered_stops(model=model, prompts=prompts)
    model.generation_config.eos_token_id = sorted(stops | {tokenizer.eos_token_id})
    expected = reference_loop(model=model, tokenizer=tokenizer, prompts=prompts, settings=SETTINGS)
    lengths = [g.generated_tokens for g in expected]
    assert lengths[0] < min(lengths[1:]) and len(set(lengths)) > 2, lengths

    kept: list[int] = []
    keep_rows = greedy.keep_rows

    def spy(**kwargs):
        kept.append(kwargs["first_column"])
        keep_rows(**kwargs)

    monkeypatch.setattr(greedy, "keep_rows", spy)
    assert all_at_once(model=model, tokenizer=tokenizer, prompts=prompts, transformers_loop=False) == expected
    assert kept and kept[0] > 0  # the longest prompt left first, and its padding-only columns with it
    assert all_at_once(model=model, tokenizer=tokenizer, prompts=prompts, transformers_loop=True) == expected


def test_every_step_has_the_logits_of_its_whole_sequence(tiny_model_dir: Path) -> None:
    """After rows and columns leave the batch, each remaining row's logits at each step are
    those of its prompt and tokens so far in one forward pass (predictions alone can miss a
    small change)."""
    model, _, prompts = tiny(tiny_model_dir, adapter=False, varied=True)
    stops = staggered_stops(model=model, prompts=prompts)
    cache = prefilled_cache(model=model, prompts=prompts, new_tokens=SETTINGS["max_new_tokens"])
    steps, progress = [], []
    hook = model.register_forward_hook(lambda module, args, output: steps.append(output.logits[:, -1].clone()))
    generated = greedy.greedy_decode(
        model=model,
        prompts=prompts,
        cache=cache,
        new_tokens=SETTINGS["max_new_tokens"],
        stop_ids=stops,
        on_token=lambda token, ended: progress.append((token, ended)),
    )
    hook.remove()
    assert len(generated[0]) == 1 and len(steps) == SETTINGS["max_new_tokens"]
    # Progress: one call per step, and the rows whose stop token has come (a row of n tokens
    # emitted it at step n + 1).
    assert [token for token, _ in progress] == list(range(1, len(steps) + 1))
    assert [ended for _, ended in progress] == [
        sum(len(row) < step for row in generated) for step in range(1, len(steps) + 1)
    ]
    for step, logits in enumerate(steps):
        # A row takes part in a step until the one where it emits its stop token.
        present = [i for i, row in enumerate(generated) if step <= len(row)]
        assert logits.shape[0] == len(present)
        for row, index in enumerate(present):
            ids = torch.tensor([prompts[index].input_ids + generated[index][:step]])
            with torch.inference_mode():
                whole = model(input_ids=ids).logits[0, -1]
            torch.testing.assert_close(logits[row], whole, atol=1e-5, rtol=1e-5)


def test_a_model_generation_default_changes_no_prediction(tiny_model_dir: Path) -> None:
    """A model whose generation_config.json sets a repetition penalty and a top-k: generate()
    would apply them to every unset field; pinned, every path predicts as a model without them."""
    model, tokenizer, prompts = tiny(tiny_model_dir, adapter=False)
    plain = reference_loop(model=model, tokenizer=tokenizer, prompts=prompts, settings=SETTINGS)
    model.generation_config.repetition_penalty = 50.0
    model.generation_config.top_k = 2
    config = generation_config(settings=SETTINGS, pad_id=0, stop_ids={1})
    pinned = without_model_defaults(config=config, model=model)
    assert (pinned.repetition_penalty, pinned.top_k) == (1.0, 50) and config.repetition_penalty is None
    assert reference_loop(model=model, tokenizer=tokenizer, prompts=prompts, settings=SETTINGS) == plain
    for transformers_loop in (False, True):
        assert (
            all_at_once(model=model, tokenizer=tokenizer, prompts=prompts, transformers_loop=transformers_loop) == plain
        )
    # Without the pinning, generate() applies the penalty: the test above can fail.
    assert tokens_alone(model=model, prompt=prompts[1], config=config) != tokens_alone(
        model=model, prompt=prompts[1], config=pinned
    )


def test_a_model_default_that_cannot_be_pinned_is_an_error(tiny_model_dir: Path) -> None:
    model, _, _ = tiny(tiny_model_dir, adapter=False)
    model.generation_config.suppress_tokens = [5]
    with pytest.raises(ValueError, match="generation_config.json sets suppress_tokens"):
        without_model_defaults(config=generation_config(settings=SETTINGS, pad_id=0, stop_ids={1}), model=model)


def test_sampling_applies_no_top_k_cut() -> None:
    sampled = generation_config(settings={**SETTINGS, "greedy": False, "top_p": 0.9}, pad_id=0, stop_ids={1})
    assert (sampled.top_k, sampled.top_p, sampled.do_sample) == (0, 0.9, True)
