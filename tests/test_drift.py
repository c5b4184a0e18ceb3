"""Hidden-state drift and perplexity on the tiny random Llama with SmolLM2's tokenizer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model

from lora_study.model.loading import load_model, load_tokenizer
from lora_study.model.perplexity import perplexity
from lora_study.model.prompts import PromptBuilder
from lora_study.stages.drift.features import (
    compare_features,
    hidden_state_batches,
    pool,
    pooled_features,
    real_token_rows,
    scope_masks,
    shuffled_pairing,
    token_level_cka,
)
from lora_study.stats.cka import linear_cka

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


def compare(
    base,
    tuned,
    prompts,
    tokenizer,
    *,
    scope: str = "prompt",
    batch_size: int = 3,
    pooling: str = "mean",
    token_level: bool = True,
) -> dict:
    """What a drift job computes: both models' pooled features, compared, plus token-level CKA."""
    scopes = scope_masks(builder=builder(tokenizer), prompts=prompts, scope=scope)
    settings = {
        "prompts": prompts,
        "scopes": scopes,
        "pad_id": tokenizer.pad_token_id,
        "batch_size": batch_size,
        "device": "cpu",
    }
    xs = pooled_features(model=base, pooling=pooling, **settings)
    ys = pooled_features(model=tuned, pooling=pooling, **settings)
    result = compare_features(xs=xs, ys=ys, shuffle_seed=0)
    if token_level:
        result.update(token_level_cka(base=base, tuned=tuned, **settings))
    return result


def test_one_hidden_state_per_block_plus_embeddings_batched_by_length(tiny) -> None:
    tokenizer, model, prompts = tiny
    scopes = scope_masks(builder=builder(tokenizer), prompts=prompts, scope="input")
    batches = list(
        hidden_state_batches(
            model=model, prompts=prompts, scopes=scopes, pad_id=tokenizer.pad_token_id, batch_size=3, device="cpu"
        )
    )
    assert [mask.shape[0] for _, _, mask in batches] == [3, 3, 1]
    assert sorted(i for indices, _, _ in batches for i in indices) == list(range(len(prompts)))
    lengths = [len(prompts[i].input_ids) for indices, _, _ in batches for i in indices]
    assert lengths == sorted(lengths)  # shortest first: less padding per batch
    indices, hidden, selected = batches[0]
    assert len(hidden) == model.config.num_hidden_layers + 1
    assert all(h.shape == (*selected.shape, model.config.hidden_size) for h in hidden)
    # The selection is each prompt's input tokens, aligned with the left padding.
    for row, i in enumerate(indices):
        assert selected[row].sum().item() == sum(scopes[i])
        assert selected[row, -len(scopes[i]) :].tolist() == scopes[i]


def test_input_scope_selects_the_examples_own_tokens_only(tiny) -> None:
    tokenizer, _, prompts = tiny
    for prompt, mask in zip(
        prompts, scope_masks(builder=builder(tokenizer), prompts=prompts, scope="input"), strict=True
    ):
        assert not mask[0]  # the attention sink (first token) is template
        assert (
            tokenizer.decode([t for t, keep in zip(prompt.input_ids, mask, strict=True) if keep]).strip()
            == prompt.input_text
        )
        assert "Summarize" not in tokenizer.decode([t for t, keep in zip(prompt.input_ids, mask, strict=True) if keep])
    everything = scope_masks(builder=builder(tokenizer), prompts=prompts, scope="prompt")
    assert all(all(mask) for mask in everything)
    with pytest.raises(ValueError, match="unknown drift.tokens"):
        scope_masks(builder=builder(tokenizer), prompts=prompts, scope="all")


def test_shared_prefix_and_length_cannot_make_unrelated_features_look_similar() -> None:
    """The audit's failure, constructed: every prompt starts with the same 10 tokens (one of
    them a huge attention sink), identical in both models; the examples' own tokens are
    unrelated between the models. Pooled over the whole prompt, the features are a fixed
    vector / length and CKA reads near 1; pooled over the input tokens it is at chance."""
    rng = np.random.default_rng(0)
    n, prefix, d = 40, 10, 16
    shared = rng.normal(size=(prefix, d))
    shared[0] *= 100.0  # the attention sink
    lengths = rng.integers(5, 60, size=n)
    width = prefix + lengths.max()
    base, tuned = torch.zeros((n, width, d), dtype=torch.float64), torch.zeros((n, width, d), dtype=torch.float64)
    whole, own = torch.zeros((n, width), dtype=torch.long), torch.zeros((n, width), dtype=torch.long)
    for i, length in enumerate(lengths):
        base[i, :prefix] = tuned[i, :prefix] = torch.from_numpy(shared)
        base[i, prefix : prefix + length] = torch.from_numpy(rng.normal(size=(length, d)))
        tuned[i, prefix : prefix + length] = torch.from_numpy(rng.normal(size=(length, d)))
        whole[i, : prefix + length] = 1
        own[i, prefix : prefix + length] = 1
    pooled = {
        name: [pool(hidden=h, attention_mask=mask, pooling="mean").numpy() for h in (base, tuned)]
        for name, mask in (("prompt", whole), ("input", own))
    }
    assert linear_cka(*pooled["prompt"], debiased=True) > 0.9  # the flaw: "no drift" for unrelated models
    assert abs(linear_cka(*pooled["input"], debiased=True)) < 0.3  # chance: nothing shared but the prefix


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
@pytest.mark.parametrize("scope", ["input", "prompt"])
def test_padding_does_not_change_pooled_states(tiny, pooling: str, scope: str) -> None:
    tokenizer, model, prompts = tiny
    short, long = prompts[1], builder(tokenizer).build(" ".join(TEXTS))  # 41 and 64 tokens
    assert len(long.input_ids) > len(short.input_ids) + 20
    settings = {"model": model, "pad_id": tokenizer.pad_token_id, "device": "cpu", "pooling": pooling}
    pair = [long, short]
    alone = pooled_features(
        prompts=[short],
        scopes=scope_masks(builder=builder(tokenizer), prompts=[short], scope=scope),
        batch_size=1,
        **settings,
    )
    padded = pooled_features(
        prompts=pair,
        scopes=scope_masks(builder=builder(tokenizer), prompts=pair, scope=scope),
        batch_size=2,
        **settings,
    )
    for a, p in zip(alone, padded, strict=True):
        np.testing.assert_allclose(p[1], a[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "last"])
@pytest.mark.parametrize("scope", ["input", "prompt"])
def test_lora_with_zero_b_leaves_every_layer_identical(tiny, tiny_model_dir: Path, pooling: str, scope: str) -> None:
    tokenizer, model, prompts = tiny
    result = compare(model, with_lora(tiny_model_dir, zero_b=True), prompts, tokenizer, pooling=pooling, scope=scope)
    layers = model.config.num_hidden_layers + 1
    assert result["examples"] == len(prompts) and result["layers"] == layers
    masks = scope_masks(builder=builder(tokenizer), prompts=prompts, scope=scope)
    assert result["tokens"] == sum(map(sum, masks))
    # With "last" pooling the embedding layer is one constant vector (every prompt ends with the
    # same template token, every text here with "."): CKA is undefined there (None).
    constant = pooling == "last"
    defined = range(1, layers) if constant else range(layers)
    if constant:
        assert result["cka_debiased"][0] is None and result["matrix_biased"][0][0] is None
    for key in ("cka_debiased", "cka_biased", "token_cka_debiased", "token_cka_biased", "cosine_centred", "cosine_raw"):
        assert [result[key][i] for i in defined] == pytest.approx([1.0] * len(defined), abs=1e-9), key
    for name in ("debiased", "biased"):
        for i in defined:
            assert result[f"matrix_{name}"][i][i] == pytest.approx(result[f"cka_{name}"][i])
    json.dumps(result, allow_nan=False)  # plain, finite values only


def test_self_baseline_is_one_and_shuffled_baseline_is_lower(tiny, tiny_model_dir: Path) -> None:
    tokenizer, model, prompts = tiny
    result = compare(model, with_lora(tiny_model_dir, zero_b=False), prompts, tokenizer, scope="input")
    for name in ("debiased", "biased"):
        assert result["self"][f"cka_{name}"] == pytest.approx([1.0] * result["layers"], abs=1e-9)
        # Only 7 random-model examples: the chance level is noisy (debiased sd ~ sqrt(2/(7*4)) = 0.27),
        # so all that is sound to claim is that unmatched examples never look identical.
        assert all(math.isfinite(v) and v < 1 - 1e-3 for v in result["shuffled"][f"cka_{name}"])
    # A random nonzero B really changes the model past the embeddings, so the checks above and
    # below are not vacuous.
    assert result["cka_biased"][0] == pytest.approx(1.0) and result["cosine_centred"][-1] < 1 - 1e-4


def test_centred_cosine_is_lower_than_raw_cosine_for_a_shared_offset() -> None:
    rng = np.random.default_rng(0)
    offset = rng.normal(size=8) * 10
    x = offset + rng.normal(size=(20, 8))
    y = offset + rng.normal(size=(20, 8))  # unrelated apart from the offset
    result = compare_features(xs=[x] * 1, ys=[y], shuffle_seed=0)
    assert result["cosine_raw"][0] > 0.9 and abs(result["cosine_centred"][0]) < 0.3


def test_cka_does_not_depend_on_batching(tiny, tiny_model_dir: Path) -> None:
    tokenizer, model, prompts = tiny
    tuned = with_lora(tiny_model_dir, zero_b=False)
    small, whole = (compare(model, tuned, prompts, tokenizer, batch_size=size, scope="input") for size in (2, 7))
    for key in ("cka_debiased", "cka_biased", "token_cka_debiased", "token_cka_biased", "cosine_centred"):
        np.testing.assert_allclose(small[key], whole[key], rtol=1e-6, err_msg=key)
    np.testing.assert_allclose(small["matrix_debiased"], whole["matrix_debiased"], rtol=1e-6, atol=1e-9)


def test_bad_settings_are_rejected(tiny) -> None:
    tokenizer, model, prompts = tiny
    with pytest.raises(ValueError, match="at least 4 prompts"):
        compare(model, model, prompts[:3], tokenizer, token_level=False)
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
