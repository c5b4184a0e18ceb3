"""Hidden-state drift and perplexity on the tiny random Llama with SmolLM2's tokenizer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model

from lora_study.drift import compare_models, hidden_state_batches, perplexity, pool, real_token_rows, shuffled_pairing
from lora_study.modeling import load_model, load_tokenizer
from lora_study.prompts import PromptBuilder

TEXTS = [
    "The council approved the new budget on Tuesday after a long debate.",
    "Rain is expected tomorrow.",
    "A small dog found its way home after three days lost in the forest near the lake.",
    "Stock markets fell sharply as investors worried about rising interest rates.",
    "The recipe needs two eggs, flour, sugar and a pinch of salt.",
    "Scientists observed a new comet passing close to Jupiter last week.",
    "The library will close early on Friday for maintenance of its heating system.",
]


def builder(tokenizer) -> PromptBuilder:
    return PromptBuilder(tokenizer=tokenizer, instruction="Summarize.", chat_template=True, max_input_tokens=64)


@pytest.fixture()
def tiny(tiny_model_dir: Path):
    tokenizer = load_tokenizer(tiny_model_dir)
    model = load_model(model_dir=tiny_model_dir, device="cpu", dtype=torch.float32)
    return tokenizer, model, [builder(tokenizer).build(text) for text in TEXTS]


def with_lora(tiny_model_dir: Path, *, zero_b: bool) -> torch.nn.Module:
    """A freshly loaded copy wrapped in LoRA: PEFT starts B at zero (the model is unchanged)
    unless asked for random B, which gives a genuinely different model."""
    torch.manual_seed(1)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=zero_b)
    return get_peft_model(load_model(model_dir=tiny_model_dir, device="cpu", dtype=torch.float32), config).eval()


def compare(base, tuned, prompts, tokenizer, **overrides):
    settings = {"batch_size": 3, "pooling": "mean", "token_level": True, "shuffle_seed": 0} | overrides
    return compare_models(base=base, tuned=tuned, prompts=prompts, pad_id=tokenizer.pad_token_id, device="cpu", **settings)


def test_pool_reads_the_mask_whatever_the_padding_holds() -> None:
    hidden = torch.full((2, 4, 2), 1e30)  # padding rows are huge: any leak shows
    hidden[0, 2:] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # left padded: real tokens at 2, 3
    hidden[1, :3] = torch.tensor([[5.0, 6.0], [7.0, 8.0], [9.0, 10.0]])  # right padded: 0, 1, 2
    hidden[0, 0] = float("nan")
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 0]])
    mean = pool(hidden=hidden, attention_mask=mask, pooling="mean")
    last = pool(hidden=hidden, attention_mask=mask, pooling="last")
    assert mean.dtype == last.dtype == torch.float64
    assert mean.tolist() == [[2.0, 3.0], [7.0, 8.0]]
    assert last.tolist() == [[3.0, 4.0], [9.0, 10.0]]
    assert real_token_rows(hidden=hidden, attention_mask=mask).tolist() == [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]
    with pytest.raises(ValueError, match="mean, last"):
        pool(hidden=hidden, attention_mask=mask, pooling="max")


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_padding_does_not_change_pooled_states(tiny, pooling: str) -> None:
    tokenizer, model, prompts = tiny
    short, long = prompts[1], builder(tokenizer).build(" ".join(TEXTS))  # 41 and 64 tokens
    assert len(long.input_ids) > len(short.input_ids) + 20
    [(alone, alone_mask)] = hidden_state_batches(model=model, prompts=[short], pad_id=tokenizer.pad_token_id, batch_size=1, device="cpu")
    [(padded, padded_mask)] = hidden_state_batches(model=model, prompts=[long, short], pad_id=tokenizer.pad_token_id, batch_size=2, device="cpu")
    assert padded_mask[1].tolist()[0] == 0  # the short prompt really is left padded
    for a, p in zip(alone, padded):
        torch.testing.assert_close(
            pool(hidden=p, attention_mask=padded_mask, pooling=pooling)[1],
            pool(hidden=a, attention_mask=alone_mask, pooling=pooling)[0],
            atol=1e-5, rtol=1e-5,
        )


def test_one_hidden_state_per_block_plus_embeddings(tiny) -> None:
    tokenizer, model, prompts = tiny
    batches = list(hidden_state_batches(model=model, prompts=prompts, pad_id=tokenizer.pad_token_id, batch_size=3, device="cpu"))
    assert [mask.shape[0] for _, mask in batches] == [3, 3, 1]
    hidden, mask = batches[0]
    assert len(hidden) == model.config.num_hidden_layers + 1
    assert all(h.shape == (*mask.shape, model.config.hidden_size) for h in hidden)


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_lora_with_zero_b_leaves_every_layer_identical(tiny, tiny_model_dir: Path, pooling: str) -> None:
    tokenizer, model, prompts = tiny
    result = compare(model, with_lora(tiny_model_dir, zero_b=True), prompts, tokenizer, pooling=pooling)
    layers = model.config.num_hidden_layers + 1
    assert result["examples"] == len(prompts) and result["layers"] == layers and result["pooling"] == pooling
    assert result["tokens"] == sum(len(p.input_ids) for p in prompts)
    # Every prompt ends with the same template token, so with "last" pooling the embedding
    # layer is one constant vector: CKA is undefined there and reported as None.
    defined = range(1, layers) if pooling == "last" else range(layers)
    if pooling == "last":
        assert result["cka_debiased"][0] is None and result["matrix_biased"][0][0] is None
    for key in ("cka_debiased", "cka_biased", "token_cka_debiased", "token_cka_biased", "cosine_mean"):
        assert [result[key][i] for i in defined] == pytest.approx([1.0] * len(defined), abs=1e-9), key
    for name in ("debiased", "biased"):
        for i in defined:
            assert result[f"matrix_{name}"][i][i] == pytest.approx(result[f"cka_{name}"][i])
    json.dumps(result, allow_nan=False)  # plain, finite values only


def test_self_baseline_is_one_and_shuffled_baseline_is_lower(tiny, tiny_model_dir: Path) -> None:
    tokenizer, model, prompts = tiny
    result = compare(model, with_lora(tiny_model_dir, zero_b=False), prompts, tokenizer)
    for name in ("debiased", "biased"):
        assert result["self"][f"cka_{name}"] == pytest.approx([1.0] * result["layers"], abs=1e-9)
        # Only 7 random-model examples: the chance level is noisy (debiased sd ~ sqrt(2/(7*4)) = 0.27),
        # so all that is sound to claim is that unmatched examples never look identical.
        assert all(math.isfinite(v) and v < 1 - 1e-3 for v in result["shuffled"][f"cka_{name}"])
    # A random nonzero B really changes the model past the embeddings, so the checks above and
    # below are not vacuous.
    assert result["cka_biased"][0] == pytest.approx(1.0) and result["cosine_mean"][-1] < 1 - 1e-4


def test_cka_does_not_depend_on_batching(tiny, tiny_model_dir: Path) -> None:
    tokenizer, model, prompts = tiny
    tuned = with_lora(tiny_model_dir, zero_b=False)
    small, whole = (compare(model, tuned, prompts, tokenizer, batch_size=size) for size in (2, 7))
    for key in ("cka_debiased", "cka_biased", "token_cka_debiased", "token_cka_biased", "cosine_mean"):
        np.testing.assert_allclose(small[key], whole[key], rtol=1e-6, err_msg=key)
    np.testing.assert_allclose(small["matrix_debiased"], whole["matrix_debiased"], rtol=1e-6, atol=1e-9)


def test_compare_models_rejects_bad_settings_before_running(tiny) -> None:
    tokenizer, model, prompts = tiny
    with pytest.raises(ValueError, match="at least 4 prompts"):
        compare(model, model, prompts[:3], tokenizer)
    with pytest.raises(ValueError, match="unknown pooling"):
        compare(model, model, prompts, tokenizer, pooling="first")


def test_perplexity_matches_the_logits_and_ignores_batching(tiny) -> None:
    tokenizer, model, _ = tiny
    text = TEXTS[0]
    ids = torch.tensor([tokenizer(text, add_special_tokens=True).input_ids])
    with torch.inference_mode():
        log_probs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].double(), dim=-1)
    by_hand = -log_probs.gather(1, ids[0, 1:, None]).mean().item()
    alone = perplexity(model=model, tokenizer=tokenizer, texts=[text], max_tokens=256, batch_size=1, device="cpu")
    assert alone["tokens"] == ids.shape[1] - 1
    assert alone["mean_nll"] == pytest.approx(by_hand, rel=1e-5)
    assert alone["perplexity"] == pytest.approx(math.exp(by_hand), rel=1e-5)
    # Batched with longer texts (so this one is right padded) gives the same numbers per token.
    settings = {"model": model, "tokenizer": tokenizer, "texts": TEXTS, "max_tokens": 256, "device": "cpu"}
    one, all_at_once = perplexity(**settings, batch_size=1), perplexity(**settings, batch_size=7)
    assert one["tokens"] == all_at_once["tokens"] == sum(len(tokenizer(t).input_ids) - 1 for t in TEXTS)
    assert all_at_once["mean_nll"] == pytest.approx(one["mean_nll"], rel=1e-5)
    # Truncation: at most max_tokens per text, hence max_tokens - 1 scored.
    assert perplexity(**settings | {"max_tokens": 5}, batch_size=3)["tokens"] == 4 * len(TEXTS)


def test_perplexity_of_a_near_uniform_model_is_about_the_vocabulary_size(tiny) -> None:
    # Random init (std 0.02, hidden 32) gives logits of sd ~0.02 * sqrt(32) = 0.11: the
    # predictions are almost uniform, so NLL ~ log V + sd^2 / 2. Catches a wrong log base,
    # a sum instead of a mean, or a shifted target.
    tokenizer, model, _ = tiny
    result = perplexity(model=model, tokenizer=tokenizer, texts=TEXTS, max_tokens=256, batch_size=4, device="cpu")
    assert result["mean_nll"] == pytest.approx(math.log(model.config.vocab_size), abs=0.05)


def test_shuffled_pairing_never_pairs_an_example_with_itself() -> None:
    for n in (2, 4, 20, 101):
        for seed in range(5):
            pairing = shuffled_pairing(n=n, seed=seed)
            assert sorted(pairing) == list(range(n)) and not any(pairing == np.arange(n))
    assert list(shuffled_pairing(n=20, seed=0)) == list(shuffled_pairing(n=20, seed=0))
    assert list(shuffled_pairing(n=20, seed=0)) != list(shuffled_pairing(n=20, seed=1))
