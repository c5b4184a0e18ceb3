"""The weight-space stage's sections on small constructed weights.json / mitigation.json dicts."""

from __future__ import annotations

from typing import Any

from lora_study.core.grid import VariantSpec, group_of
from lora_study.report.weights import WeightResult, compared_kinds, per_layer, weight_sections

SETTINGS = {"top_k": 10, "epsilon": 0.5, "epsilon_sweep": [0.3, 0.5, 0.7], "energy": 0.9, "spectrum_values": 64}


def module(layer: int, kind: str, *, rank: int, intruders: int, sweep: list[int], relative: float = 0.01) -> dict:
    return {
        "module": f"model.layers.{layer}.self_attn.{kind}",
        "layer": layer,
        "kind": kind,
        "shape": [8, 8],
        "relative_update_norm": relative,
        "effective_rank": rank,
        "intruders": intruders,
        "intruders_sweep": sweep,
        "max_cosine": [0.9] * 10,
        "singular_values": [1.0],
    }


def weights_metrics(modules: list[dict]) -> dict[str, Any]:
    """weights.json's `run` settings and `metrics` for `modules`."""
    ranks = sorted(m["effective_rank"] for m in modules)
    summary = {
        "modules": len(modules),
        "mean_relative_update_norm": sum(m["relative_update_norm"] for m in modules) / len(modules),
        "median_effective_rank": ranks[len(ranks) // 2],
        "mean_effective_rank": sum(ranks) / len(ranks),
        "max_effective_rank": max(ranks),
        "intruders": sum(m["intruders"] for m in modules),
        "modules_with_intruders": sum(m["intruders"] > 0 for m in modules),
        "intruders_sweep": [0, 0, 0],
    }
    return {"run": {"settings": SETTINGS}, "metrics": {"summary": summary, "modules": modules, "other_changed": []}}


def weights_json(
    spec: VariantSpec, modules: list[dict], *, mean_relative: float, median_rank: float, intruders: int
) -> dict:
    result = weights_metrics(modules)
    result["metrics"]["summary"].update(
        mean_relative_update_norm=mean_relative,
        median_effective_rank=median_rank,
        mean_effective_rank=median_rank,
        intruders=intruders,
    )
    return {"run": {"variant": spec.name, "spec": spec.to_dict(), **result["run"]}, "metrics": result["metrics"]}


LORA_SPEC = VariantSpec(kind="lora", train_size=100, seed=1, learning_rate=1e-3, rank=8, alpha=16.0, targets="qv")
FFT_SPEC = VariantSpec(kind="fft", train_size=100, seed=1, learning_rate=1e-5)
LORA = WeightResult(
    name=LORA_SPEC.name,
    weights=weights_json(
        LORA_SPEC,
        [
            module(0, "q_proj", rank=7, intruders=2, sweep=[1, 2, 4]),
            module(0, "v_proj", rank=5, intruders=0, sweep=[0, 0, 1]),
            module(1, "q_proj", rank=3, intruders=1, sweep=[0, 1, 1]),
            module(1, "v_proj", rank=1, intruders=0, sweep=[0, 0, 0]),
        ],
        mean_relative=0.012345,
        median_rank=4.0,
        intruders=3,
    ),
)
FFT = WeightResult(
    name=FFT_SPEC.name,
    weights=weights_json(
        FFT_SPEC,
        [
            module(0, "q_proj", rank=40, intruders=0, sweep=[0, 0, 0]),
            module(0, "v_proj", rank=30, intruders=0, sweep=[0, 0, 1]),
            module(0, "k_proj", rank=99, intruders=5, sweep=[5, 5, 5]),
            module(1, "q_proj", rank=20, intruders=0, sweep=[0, 0, 0]),
            module(1, "v_proj", rank=10, intruders=0, sweep=[0, 0, 0]),
        ],
        mean_relative=0.0456,
        median_rank=30.0,
        intruders=5,
    ),
)


def mitigation_metrics() -> dict[str, Any]:
    """mitigation.json's `run` settings and `metrics`."""

    def _quality(rouge_l: float) -> dict:
        return {"metric": "rougeL", "label": "ROUGE-L", "value": rouge_l, "values": {"rougeL": rouge_l}}

    def point(strength: float, rouge_l: float, nll: float, kept: float) -> dict:
        return {
            "strength": strength,
            "mitigation_lambda": 1 - strength,
            "update_remaining": kept,
            "quality": _quality(rouge_l),
            "forgetting": {"mean_nll": nll, "texts": 3},
        }

    return {
        "run": {"settings": {"top_k": 10, "threshold_epsilon": 0.5, "strengths": [0.5, 1.0]}},
        "metrics": {
            "intruders": {"modules": 4, "modules_with_intruders": 2, "total": 3},
            "base": {"quality": _quality(0.2), "forgetting": {"mean_nll": 3.0, "texts": 3}},
            "curve": [point(0.0, 0.2468, 3.25, 1.0), point(0.5, 0.2357, 3.125, 0.8), point(1.0, 0.2111, 3.0625, 0.6)],
        },
    }


def test_ffts_per_layer_numbers_cover_the_modules_lora_targets() -> None:
    kinds = compared_kinds([LORA, FFT])
    assert kinds == {"q_proj", "v_proj"}
    assert per_layer(FFT, kinds=kinds) == {
        0: {"effective_rank": 35.0, "intruders": 0},
        1: {"effective_rank": 15.0, "intruders": 0},
    }
    assert per_layer(LORA, kinds=kinds) == {
        0: {"effective_rank": 6.0, "intruders": 2},
        1: {"effective_rank": 2.0, "intruders": 1},
    }
    assert compared_kinds([FFT]) == {"q_proj", "v_proj", "k_proj"}  # no LoRA: every kind
    renamed = WeightResult(name="fft-looking-name", weights=LORA.weights)
    assert not renamed.is_fft and compared_kinds([renamed, FFT]) == kinds  # full fine-tuning by its spec, not its name


def test_weight_sections_show_the_numbers() -> None:
    sections = weight_sections(results=[LORA, FFT])
    assert [s.anchor for s in sections] == ["weight-drift"]  # no mitigation ran
    body = sections[0].body
    for text in (
        LORA.name,
        FFT.name,
        "0.0123",
        "0.0456",
        "4.0",
        "30.0",
        "k=10, eps=0.5",
        "q_proj, v_proj",
    ):
        assert text in body
    assert body.count("<svg") == 2  # the per-layer plots and the sweep plot
    # The sweep totals over q_proj and v_proj: LoRA [1, 3, 6], FFT [0, 0, 1] (k_proj's 5 left out).
    assert '<td class="num">1</td><td class="num">3</td><td class="num">6</td>' in body
    assert '<td class="num">0</td><td class="num">0</td><td class="num">1</td>' in body


def test_one_variant_and_no_variant() -> None:
    assert weight_sections(results=[]) == []
    sections = weight_sections(results=[LORA])
    assert len(sections) == 1 and LORA.name in sections[0].body


def test_the_mitigation_curve_appears_when_it_ran() -> None:
    lora = WeightResult(name=LORA.name, weights=LORA.weights, mitigation=mitigation_metrics())
    sections = weight_sections(results=[lora, FFT])
    assert [s.anchor for s in sections] == ["weight-drift", "intruder-mitigation"]
    body = sections[1].body
    for text in ("0.2468", "0.2357", "0.2111", "+0.2500", "+0.1250", "+0.0625", "3 in 2/4", "0.800"):
        assert text in body
    assert FFT.name not in body and body.count("<svg") == 1


def test_a_variant_not_shown_to_beat_the_base_is_flagged_beside_its_weight_figures() -> None:
    """LoRA's comparison against the base is not supported: its few intruders and low rank may
    say it barely moved, so the section says so next to them; full fine-tuning, which beat the
    base, is not flagged."""
    comparisons = {
        "run": {"metric": "rougeL", "metric_label": "ROUGE-L"},
        "metrics": {
            "comparisons": [
                {
                    "a": "base",
                    "b": group_of(LORA_SPEC),
                    "difference": {"mean": -0.0001, "low": -0.03, "high": 0.03},
                    "supported": False,
                    "p_adjusted": 0.997,
                },
                {
                    "a": "base",
                    "b": group_of(FFT_SPEC),
                    "difference": {"mean": 0.05, "low": 0.02, "high": 0.08},
                    "supported": True,
                    "p_adjusted": 0.01,
                },
            ]
        },
    }
    body = weight_sections(results=[LORA, FFT], comparisons=comparisons)[0].body
    assert "<strong>Not shown to have learned:</strong>" in body
    note = (
        f"{LORA.name}: 3 intruders, median effective rank 4.0; {group_of(LORA_SPEC)} is not shown to beat the base "
        "(ROUGE-L -0.0001 [-0.0300, +0.0300] over the base, p 0.997)"
    )
    assert note in body
    assert f"<li>{FFT.name}" not in body
    assert "no: -0.0001 [-0.0300, +0.0300], p 0.997 (may be under-trained)" in body  # the table's column
    assert "yes: +0.0500 [+0.0200, +0.0800], p 0.01" in body
    # Without comparisons the gain is unknown, and the section says that instead.
    unknown = weight_sections(results=[LORA])[0].body
    assert "Not shown to have learned" not in unknown and "Gain over the base not measured" in unknown
