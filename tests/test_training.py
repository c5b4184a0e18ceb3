"""Adapters and the training loop on a tiny random Llama: masking, counts, seeds, artefacts."""

from __future__ import annotations

import math
import random
from itertools import pairwise
from pathlib import Path

import pytest
import torch
from peft import PeftModel

from lora_study.core.data import Example
from lora_study.core.grid import VariantSpec, expand_grid, lora_scaling, target_modules
from lora_study.model.adapters import adapter_scaling, attach_adapter, count_parameters, lora_config
from lora_study.model.loading import load_model, load_tokenizer
from lora_study.model.prompts import PromptBuilder
from lora_study.model.training import (
    IGNORE,
    StepRecord,
    accumulate_gradients,
    collate,
    epoch_batches,
    learning_rate_factor,
    make_item,
    megabatch_batches,
    padding_share,
    peak_memory_bytes,
    steady_state,
    target_loss_sum,
    train_loop,
)

SETTINGS = {
    "epochs": 1,
    "batch_size": 2,
    "megabatch": 1,
    "grad_accumulation": 1,
    "warmup_ratio": 0.0,
    "schedule": "constant",
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
}
EXAMPLES = [
    Example(
        id=str(i),
        input=f"Abstract {i}: " + "we study adapters and ranks. " * (i + 1),
        reference=(f"Summary {i}: " + "adapters work. " * (2 * i + 1)).strip(),
    )
    for i in range(4)
]


def lora_spec(rank: int = 4, kind: str = "lora", dropout: float = 0.0) -> VariantSpec:
    return VariantSpec(
        kind=kind, train_size=4, seed=7, learning_rate=1e-2, rank=rank, alpha=2.0 * rank, dropout=dropout, targets="qv"
    )


@pytest.fixture()
def tiny(tiny_model_dir: Path):
    tokenizer = load_tokenizer(tiny_model_dir)
    builder = PromptBuilder(tokenizer=tokenizer, instruction="Summarize.", chat_template=True, max_input_tokens=96)
    items = [make_item(builder=builder, tokenizer=tokenizer, example=e, max_target_tokens=64) for e in EXAMPLES]
    return tokenizer, builder, items


def fresh(tiny_model_dir: Path):
    torch.manual_seed(0)
    return load_model(model_dir=tiny_model_dir, device="cpu", dtype=torch.float32)


def test_labels_mask_every_prompt_and_padding_position(tiny, tiny_model_dir: Path) -> None:
    tokenizer, builder, items = tiny
    for item, example in zip(items, EXAMPLES, strict=True):
        prompt_length = len(builder.build(example.input).input_ids)
        assert all(label == IGNORE for label in item.labels[:prompt_length])
        assert item.labels[prompt_length:] == item.input_ids[prompt_length:]
        assert tokenizer.decode(item.labels[prompt_length:]).startswith(example.reference)
    batch = collate(items, pad_id=tokenizer.pad_token_id, device="cpu")
    padding = batch["attention_mask"] == 0
    assert padding.any()
    assert (batch["labels"][padding] == IGNORE).all()
    assert ((batch["labels"] != IGNORE).sum(dim=1).tolist()) == [item.target_tokens for item in items]


def test_target_loss_equals_the_models_own_loss(tiny, tiny_model_dir: Path) -> None:
    """Projecting only target positions gives exactly the loss of the full logits."""
    tokenizer, _, items = tiny
    model = fresh(tiny_model_dir)
    batch = collate(items, pad_id=tokenizer.pad_token_id, device="cpu")
    with torch.no_grad():
        ours = target_loss_sum(model, batch) / sum(item.target_tokens for item in items)
        theirs = model(**batch).loss
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_fresh_lora_equals_the_base(tiny, tiny_model_dir: Path) -> None:
    tokenizer, _, items = tiny
    batch = collate(items, pad_id=tokenizer.pad_token_id, device="cpu")
    base = fresh(tiny_model_dir)
    with torch.no_grad():
        expected = base(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    model = attach_adapter(model=fresh(tiny_model_dir), spec=lora_spec())
    assert all((module.weight == 0).all() for name, module in model.named_modules() if name.endswith("lora_B.default"))
    with torch.no_grad():
        actual = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(actual, expected, atol=0, rtol=0)


def test_trainable_count_is_rank_times_in_plus_out(tiny_model_dir: Path) -> None:
    for preset in ("qv", "attn"):
        base = fresh(tiny_model_dir)
        expected = sum(
            8 * (module.in_features + module.out_features)
            for name, module in base.named_modules()
            if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] in target_modules(preset)
        )
        spec = VariantSpec(kind="lora", train_size=1, seed=1, learning_rate=1e-3, rank=8, alpha=16.0, targets=preset)
        trainable, total = count_parameters(attach_adapter(model=base, spec=spec))
        assert trainable == expected > 0
        assert total == sum(p.numel() for p in fresh(tiny_model_dir).parameters()) + trainable


def test_same_seed_gives_identical_weights_and_other_seed_does_not(tiny, tiny_model_dir: Path) -> None:
    tokenizer, _, items = tiny

    def run(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        model = attach_adapter(model=fresh(tiny_model_dir), spec=lora_spec(dropout=0.1))
        train_loop(
            model=model,
            items=items,
            settings=SETTINGS,
            learning_rate=1e-2,
            seed=seed,
            pad_id=tokenizer.pad_token_id,
            device="cpu",
        )
        return {k: v.detach().clone() for k, v in model.state_dict().items() if "lora_" in k}

    first, second, other = run(3), run(3), run(4)
    assert first.keys() == second.keys() and first
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_lora_leaves_base_weights_untouched_and_fft_changes_them(tiny, tiny_model_dir: Path) -> None:
    tokenizer, _, items = tiny
    reference = {k: v.clone() for k, v in fresh(tiny_model_dir).state_dict().items()}

    lora = attach_adapter(model=fresh(tiny_model_dir), spec=lora_spec())
    train_loop(
        model=lora,
        items=items,
        settings=SETTINGS,
        learning_rate=1e-2,
        seed=1,
        pad_id=tokenizer.pad_token_id,
        device="cpu",
    )
    merged_free = {
        k.replace("base_model.model.", "").replace(".base_layer", ""): v
        for k, v in lora.state_dict().items()
        if "lora_" not in k
    }
    assert merged_free.keys() == reference.keys()
    assert all(torch.equal(merged_free[k], reference[k]) for k in reference)
    assert any((v != 0).any() for k, v in lora.state_dict().items() if "lora_B" in k)

    full = fresh(tiny_model_dir)
    train_loop(
        model=full,
        items=items,
        settings=SETTINGS,
        learning_rate=1e-3,
        seed=1,
        pad_id=tokenizer.pad_token_id,
        device="cpu",
    )
    changed = [k for k, v in full.state_dict().items() if not torch.equal(v, reference[k])]
    assert "model.layers.0.self_attn.q_proj.weight" in changed and "model.layers.1.mlp.down_proj.weight" in changed


def test_saved_adapter_reloads_with_peft_and_gives_the_same_logits(tiny, tiny_model_dir: Path, tmp_path: Path) -> None:
    tokenizer, _, items = tiny
    model = attach_adapter(model=fresh(tiny_model_dir), spec=lora_spec())
    train_loop(
        model=model,
        items=items,
        settings=SETTINGS,
        learning_rate=1e-2,
        seed=1,
        pad_id=tokenizer.pad_token_id,
        device="cpu",
    )
    batch = collate(items, pad_id=tokenizer.pad_token_id, device="cpu")
    with torch.no_grad():
        before = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    model.save_pretrained(tmp_path / "adapter")
    assert {p.name for p in (tmp_path / "adapter").iterdir()} >= {"adapter_config.json", "adapter_model.safetensors"}
    reloaded = PeftModel.from_pretrained(fresh(tiny_model_dir), tmp_path / "adapter").eval()
    with torch.no_grad():
        after = reloaded(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(after, before, atol=1e-6, rtol=1e-6)


def test_gradient_accumulation_equals_one_big_batch(tiny, tiny_model_dir: Path) -> None:
    """Two batches of two, each normalised by the window's target tokens, give the
    gradient of one batch of four; a per-batch mean (the common mistake) does not."""
    tokenizer, _, items = tiny
    assert len({item.target_tokens for item in items}) == 4  # unequal, so the weighting matters

    def gradients(window) -> dict[str, torch.Tensor]:
        model = attach_adapter(model=fresh(tiny_model_dir), spec=lora_spec())
        accumulate_gradients(model=model, window=window, pad_id=tokenizer.pad_token_id, device="cpu")
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    big = gradients([items])
    accumulated = gradients([items[:2], items[2:]])
    for name in big:
        torch.testing.assert_close(accumulated[name], big[name], atol=1e-7, rtol=1e-5)
    per_batch_means = {n: (gradients([items[:2]])[n] + gradients([items[2:]])[n]) / 2 for n in big}
    assert any(not torch.allclose(per_batch_means[n], big[n], atol=1e-7, rtol=1e-3) for n in big)


def test_adapter_on_an_adapted_model_is_refused(tiny_model_dir: Path) -> None:
    model = attach_adapter(model=fresh(tiny_model_dir), spec=lora_spec())
    with pytest.raises(ValueError, match="already carries an adapter"):
        attach_adapter(model=model, spec=lora_spec(rank=8))
    with pytest.raises(ValueError, match="already carries an adapter"):
        attach_adapter(model=model.get_base_model(), spec=lora_spec(rank=8))


@pytest.mark.parametrize("kind", ["dora", "rslora"])
def test_variants_are_peft_flags_and_train(kind: str, tiny, tiny_model_dir: Path) -> None:
    tokenizer, _, items = tiny
    config = lora_config(lora_spec(kind=kind))
    assert config.use_dora == (kind == "dora") and config.use_rslora == (kind == "rslora")
    model = attach_adapter(model=fresh(tiny_model_dir), spec=lora_spec(kind=kind))
    records = train_loop(
        model=model,
        items=items,
        settings=SETTINGS,
        learning_rate=1e-2,
        seed=1,
        pad_id=tokenizer.pad_token_id,
        device="cpu",
    )
    assert len(records) == 2 and all(torch.isfinite(torch.tensor(r.loss)) for r in records)


def skewed_lengths(n: int = 101) -> list[int]:
    """Prompt-like lengths: a long right tail, like aclsum's 204-589 tokens."""
    rng = random.Random(0)
    return [int(150 + rng.lognormvariate(4.5, 0.5)) for _ in range(n)]


def identical(a: list[list[int]], b: list[list[int]]) -> int:
    return len({frozenset(x) for x in a} & {frozenset(x) for x in b})


def test_megabatches_are_seeded_and_cover_every_example_once_per_epoch() -> None:
    lengths = skewed_lengths()
    for seed in range(1, 4):
        for epoch in range(3):
            batches = epoch_batches(lengths=lengths, batch_size=4, megabatch=4, seed=seed, epoch=epoch)
            assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
            assert sorted(len(batch) for batch in batches) == [1] + [4] * 25
            assert batches == epoch_batches(lengths=lengths, batch_size=4, megabatch=4, seed=seed, epoch=epoch)


def test_batch_composition_differs_between_epochs_and_seeds() -> None:
    """The former global length sort drew nearly the same batches every epoch and seed."""
    lengths = skewed_lengths()
    seed1 = [epoch_batches(lengths=lengths, batch_size=4, megabatch=4, seed=1, epoch=e) for e in range(2)]
    seed2 = epoch_batches(lengths=lengths, batch_size=4, megabatch=4, seed=2, epoch=0)
    assert identical(seed1[0], seed1[1]) <= 2 and identical(seed1[0], seed2) <= 2


def test_megabatches_sort_by_length_within_and_pad_far_less_than_random_batches() -> None:
    lengths = skewed_lengths()
    batches = megabatch_batches(lengths=lengths, batch_size=4, megabatch=8, seed=3)
    rng = random.Random(3)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    shuffled = [order[i : i + 4] for i in range(0, len(order), 4)]
    ours, random_share = (
        padding_share(lengths=lengths, batches=batches),
        padding_share(lengths=lengths, batches=shuffled),
    )
    assert ours < 0.5 * random_share
    # One megabatch spanning the whole set is the former global sort: batches do not overlap in length.
    whole = sorted(
        megabatch_batches(lengths=lengths, batch_size=4, megabatch=100, seed=3),
        key=lambda b: min(lengths[i] for i in b),
    )
    assert all(max(lengths[i] for i in a) <= min(lengths[i] for i in b) for a, b in pairwise(whole))
    assert padding_share(lengths=lengths, batches=whole) < ours


def test_padding_share_counts_padded_positions() -> None:
    assert padding_share(lengths=[10, 6, 4, 4], batches=[[0, 1], [2, 3]]) == pytest.approx(4 / 28)
    assert padding_share(lengths=[5, 5], batches=[[0, 1]]) == 0.0


def test_learning_rate_factor_warms_up_from_above_zero_and_decays() -> None:
    factors = [learning_rate_factor(step=s, warmup_steps=3, total_steps=10, schedule="linear") for s in range(10)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4:] == pytest.approx([6 / 7, 5 / 7, 4 / 7, 3 / 7, 2 / 7, 1 / 7])
    cosine = [learning_rate_factor(step=s, warmup_steps=0, total_steps=4, schedule="cosine") for s in range(4)]
    assert cosine == pytest.approx([1.0, 0.5 + 0.5 * math.cos(math.pi / 4), 0.5, 0.5 + 0.5 * math.cos(3 * math.pi / 4)])
    assert [learning_rate_factor(step=s, warmup_steps=1, total_steps=3, schedule="constant") for s in range(3)] == [
        0.5,
        1.0,
        1.0,
    ]


def test_logged_learning_rate_is_the_one_each_step_used(
    tiny, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokenizer, _, items = tiny
    used: list[float] = []
    original = torch.optim.AdamW.step

    def recording_step(self, *args, **kwargs):
        used.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", recording_step)
    settings = {**SETTINGS, "epochs": 3, "batch_size": 1, "warmup_ratio": 0.25, "schedule": "linear"}
    model = attach_adapter(model=fresh(tiny_model_dir), spec=lora_spec())
    records = train_loop(
        model=model,
        items=items,
        settings=settings,
        learning_rate=1e-2,
        seed=1,
        pad_id=tokenizer.pad_token_id,
        device="cpu",
    )
    assert len(records) == len(used) == 12
    assert [r.learning_rate for r in records] == used
    expected = [
        1e-2 * learning_rate_factor(step=s, warmup_steps=3, total_steps=12, schedule="linear") for s in range(12)
    ]
    assert used == pytest.approx(expected)
    assert used[0] == pytest.approx(1e-2 / 4) and used[3] == pytest.approx(1e-2) and min(used) > 0
    # Batches of one example of four lengths: the first epoch runs each shape for the first time.
    assert len({len(item.input_ids) for item in items}) == 4
    assert [r.first_shapes for r in records] == [1] * 4 + [0] * 8


def step(number: int, *, tokens: int, seconds: float, first_shapes: int) -> StepRecord:
    return StepRecord(
        step=number,
        epoch=1,
        loss=1.0,
        learning_rate=1e-3,
        tokens=tokens,
        target_tokens=tokens // 2,
        padded_tokens=0,
        seconds=seconds,
        flops=0.0,
        first_shapes=first_shapes,
    )


def test_steady_state_leaves_out_first_shape_steps() -> None:
    records = [
        step(1, tokens=100, seconds=5.0, first_shapes=1),  # first shape: slow, left out
        step(2, tokens=100, seconds=1.0, first_shapes=0),
        step(3, tokens=300, seconds=9.0, first_shapes=2),  # two new shapes (accumulation): left out
        step(4, tokens=300, seconds=2.0, first_shapes=0),
    ]
    steady = steady_state(records)
    assert steady["tokens_per_second"] == pytest.approx(400 / 3.0)
    assert (steady["steps"], steady["excluded_steps"], steady["tokens"]) == (2, 2, 400)
    assert steady["seconds"] == pytest.approx(3.0)
    assert "first" in steady["definition"] or "already ran" in steady["definition"]
    whole = sum(r.tokens for r in records) / sum(r.seconds for r in records)
    assert whole < steady["tokens_per_second"]
    only_first = steady_state(records[:1])
    assert only_first["tokens_per_second"] is None and only_first["excluded_steps"] == 1


def test_grid_names_and_alpha() -> None:
    training = {
        "seeds": [1, 2],
        "lora": {
            "variants": ["lora", "dora"],
            "ranks": [8, 32],
            "alpha_ratio": 2,
            "alpha": None,
            "dropout": 0.05,
            "targets": ["qv", ["q_proj", "k_proj"]],
            "learning_rate": 2e-4,
        },
        "fft": {"enabled": True, "learning_rate": 2e-5},
    }
    grid = expand_grid(training=training, train_sizes=[100, 300])
    assert len(grid) == 2 * 2 * (2 * 2 * 2 + 1)
    by_short = {(spec.method, spec.seed): spec for spec in grid.values()}
    assert by_short[("lora-r8-qv-n100", 1)].alpha == 16.0 and by_short[("dora-r32-q_proj+k_proj-n300", 2)].alpha == 64.0
    assert by_short[("fft-n300", 2)].learning_rate == 2e-5
    assert target_modules("q_proj+k_proj") == ["q_proj", "k_proj"]
    fixed = expand_grid(
        training={**training, "lora": {**training["lora"], "alpha": 16, "variants": ["lora", "rslora"]}},
        train_sizes=[100],
    )
    assert {spec.alpha for spec in fixed.values() if spec.is_lora} == {16.0}
    lora = by_short[("lora-r8-qv-n100", 1)]
    assert VariantSpec.from_dict(lora.to_dict()) == lora and grid[lora.name] == lora


def test_rslora_keeps_one_alpha_at_every_rank_and_plain_lora_keeps_alpha_2r() -> None:
    training = {
        "seeds": [1],
        "lora": {
            "variants": ["lora", "rslora"],
            "ranks": [4, 8, 32, 64],
            "alpha_ratio": 2,
            "rslora_alpha": 8,
            "alpha": None,
            "dropout": 0.05,
            "targets": ["qv"],
            "learning_rate": 2e-4,
        },
        "fft": {"enabled": False, "learning_rate": 2e-5},
    }
    grid = expand_grid(training=training, train_sizes=[100])
    assert {spec.alpha for spec in grid.values() if spec.kind == "rslora"} == {8.0}
    # Plain LoRA's specs keep alpha = 2r.
    [lora_r8] = [spec for spec in grid.values() if spec.method == "lora-r8-qv-n100"]
    assert lora_r8 == VariantSpec(
        kind="lora",
        train_size=100,
        seed=1,
        learning_rate=2e-4,
        rank=8,
        alpha=16.0,
        dropout=0.05,
        targets="qv",
        training={},
    )
    assert {lora_scaling(kind=s.kind, rank=s.rank, alpha=s.alpha) for s in grid.values() if s.kind == "lora"} == {2.0}
    assert lora_scaling(kind="rslora", rank=64, alpha=8.0) == 1.0


def test_rslora_scaling_as_peft_applies_it_follows_one_alpha_at_every_rank(tiny_model_dir: Path) -> None:
    """What ran: PEFT's scaling is alpha/sqrt(r) with the same alpha at every rank (rsLoRA's
    rank-stable rule), where alpha = 2r would have grown it as 2 sqrt(r)."""
    training = {
        "seeds": [1],
        "lora": {
            "variants": ["lora", "rslora"],
            "ranks": [2, 8, 32],
            "alpha_ratio": 2,
            "rslora_alpha": 8,
            "alpha": None,
            "dropout": 0.0,
            "targets": ["qv"],
            "learning_rate": 1e-3,
        },
        "fft": {"enabled": False, "learning_rate": 1e-5},
    }
    applied = {
        (spec.kind, spec.rank): adapter_scaling(attach_adapter(model=fresh(tiny_model_dir), spec=spec))
        for spec in expand_grid(training=training, train_sizes=[4]).values()
    }
    assert [applied["rslora", r] * math.sqrt(r) for r in (2, 8, 32)] == pytest.approx([8.0, 8.0, 8.0])
    assert [applied["rslora", r] for r in (2, 8, 32)] == pytest.approx(
        [8 / math.sqrt(2), 8 / math.sqrt(8), 8 / math.sqrt(32)]
    )
    assert [applied["lora", r] for r in (2, 8, 32)] == [2.0, 2.0, 2.0]
    assert adapter_scaling(fresh(tiny_model_dir)) is None


@pytest.mark.parametrize(("platform", "maxrss", "expected"), [("linux", 5000, 5000 * 1024), ("darwin", 5000, 5000)])
def test_peak_memory_reads_ru_maxrss_in_the_platform_unit(
    monkeypatch: pytest.MonkeyPatch, platform: str, maxrss: int, expected: int
) -> None:
    """ru_maxrss is KiB on Linux and bytes on macOS (where /proc/self/status is absent)."""
    import lora_study.model.memory as memory

    monkeypatch.setattr(memory, "_status_bytes", lambda field: None)
    monkeypatch.setattr(memory.sys, "platform", platform)
    monkeypatch.setattr(memory.resource, "getrusage", lambda who: type("Usage", (), {"ru_maxrss": maxrss})())
    assert peak_memory_bytes("cpu") == {"peak_rss_bytes": expected}
