"""Comparisons between variants on the same evaluation examples: intervals, paired
tests in two families (the primary question; everything else, quantised precisions
against `full` included, Holm-corrected), seed spread, failure modes, the LoRA-vs-FFT
quality gap and the verdict on the primary question. docs/STATISTICS.md explains each.

Variants that differ only by seed form a group (`lora-r8-qv-n100-s1`, `-s2`, ... make
`lora-r8-qv-n100`); comparisons are between groups, so several seeds are used together.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lora_study.failure_modes import measure, summarise
from lora_study.rouge import ROUGE_TYPES
from lora_study.stats import PairedComparison, bootstrap_ci, holm_adjust, paired_comparison, verdict

_SEED_SUFFIX = re.compile(r"-s(\d+)$")
_LORA_GROUP = re.compile(r"^(?P<family>(lora|dora|rslora|qlora)-)r(?P<rank>\d+)(?P<rest>-.+-n\d+)$")
_FFT_GROUP = re.compile(r"^fft-n\d+$")
_TRAIN_SIZE = re.compile(r"-n(\d+)$")
REFERENCE_PRECISION = "full"  # quantised precisions are tested against this one
DEFAULT_MAX_GAP = 0.03  # Study 4: LoRA within 3 ROUGE points of full fine-tuning


@dataclass(frozen=True)
class VariantScores:
    name: str
    per_example: Sequence[Mapping[str, Any]]  # rouge.json's per_example rows
    predictions: Sequence[Mapping[str, Any]]  # predictions.jsonl rows


def group_of(variant: str) -> str:
    """The variant's name without its seed: variants of one group differ only by seed."""
    return _SEED_SUFFIX.sub("", variant)


def fft_group(group: str) -> str | None:
    """The full fine-tuning group trained on the same data as a LoRA-family group."""
    match = _TRAIN_SIZE.search(group)
    return f"fft-n{match[1]}" if match and not group.startswith("fft-") else None


def default_pairs(groups: Sequence[str]) -> list[tuple[str, str, str]]:
    """(a, b, why): each LoRA rank against the next higher one of the same family, targets
    and training size, and each LoRA group against full fine-tuning on the same size."""
    pairs = []
    lora: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for group in groups:
        match = _LORA_GROUP.match(group)
        if match:
            lora.setdefault((match["family"], match["rest"]), []).append((int(match["rank"]), group))
    for ranked in lora.values():
        ranked.sort()
        pairs += [(low, high, "rank against the next rank") for (_, low), (_, high) in zip(ranked, ranked[1:])]
    for group in groups:
        match = _LORA_GROUP.match(group)
        if match:
            if fft_group(group) in groups:
                pairs.append((group, fft_group(group), "LoRA against full fine-tuning"))
    return pairs


def rank_questions(groups: Sequence[str]) -> list[tuple[str, str]]:
    """(lowest rank, highest rank) per LoRA family, targets and size: the study's
    "does a higher rank collapse with little data" question."""
    lora: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for group in groups:
        match = _LORA_GROUP.match(group)
        if match:
            lora.setdefault((match["family"], match["rest"]), []).append((int(match["rank"]), group))
    return [(min(r)[1], max(r)[1]) for r in lora.values() if len(r) > 1]


def primary_questions(*, groups: Sequence[str], primary: Sequence[str] | None) -> list[tuple[str, str, str]]:
    """The study's declared primary question(s): the configured [a, b] pair, or by default
    the rank question of every LoRA family, targets and size."""
    if primary:
        return [(primary[0], primary[1], "primary question (configured)")]
    return [(low, high, "primary: lowest against highest rank") for low, high in rank_questions(groups)]


def secondary_pairs(*, groups: Sequence[str], pairs: Sequence[Sequence[str]], exclude: Sequence[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """Every other comparison: against the base, rank against the next rank, LoRA against
    FFT, configured pairs; a pair already asked (in either order) is not asked twice."""
    against_base = [("base", g, "against the base model") for g in groups if g != "base" and "base" in groups]
    requested = [(a, b, "configured") for a, b in pairs]
    seen = {frozenset((a, b)) for a, b, _ in exclude}
    chosen = []
    for a, b, why in against_base + default_pairs(groups) + requested:
        if frozenset((a, b)) not in seen:
            seen.add(frozenset((a, b)))
            chosen.append((a, b, why))
    return chosen


def compare_variants(
    *,
    variants: Sequence[VariantScores],
    eval_inputs: Mapping[str, str],
    instruction: str,
    statistics: Mapping[str, Any],
    precisions: Sequence[VariantScores] = (),
) -> dict[str, Any]:
    """Everything the report needs to say whether differences are real.

    Two families of tests (docs/STATISTICS.md): the primary question, tested alone at
    alpha (several rank questions: Holm among themselves), and every other comparison,
    quantised precisions against `full` included, under one Holm correction."""
    metric, resamples, seed, confidence = (
        statistics["metric"], statistics["resamples"], statistics["seed"], statistics["confidence"]
    )
    alpha = round(1 - confidence, 12)  # the tests' level matches the intervals'
    ids = [row["id"] for row in variants[0].per_example]
    for variant in [*variants, *precisions]:
        if [row["id"] for row in variant.per_example] != ids:
            raise ValueError(f"{variant.name} was scored on other examples than {variants[0].name}")

    def f_scores(variant: VariantScores, kind: str = metric) -> list[float]:
        return [row[kind]["fmeasure"] for row in variant.per_example]

    def describe(variant: VariantScores) -> tuple[dict[str, Any], list[dict[str, float]]]:
        intervals = {kind: bootstrap_ci(f_scores(variant, kind), resamples=resamples, seed=seed, confidence=confidence).to_dict() for kind in ROUGE_TYPES}
        measures = [
            measure(prediction=row["prediction"], source=eval_inputs[row["id"]], reference=row["reference"], instruction=instruction)
            for row in variant.predictions
        ]
        return {"rouge": intervals, "failure_modes": summarise(measures)}, measures

    per_variant, failures = {}, {}
    for variant in variants:
        info, failures[variant.name] = describe(variant)
        per_variant[variant.name] = {"group": group_of(variant.name), **info}

    groups: dict[str, list[VariantScores]] = {}
    for variant in variants:
        groups.setdefault(group_of(variant.name), []).append(variant)
    # Precisions are deterministic single runs of the base model, compared like groups.
    by_name = {**groups, **{f"precision:{p.name}": [p] for p in precisions}}
    names = list(groups)
    primary = primary_questions(groups=names, primary=statistics.get("primary"))
    secondary = secondary_pairs(groups=names, pairs=statistics.get("pairs", []), exclude=primary)
    precision_names = [p.name for p in precisions]
    precision_pairs = [
        (f"precision:{REFERENCE_PRECISION}", f"precision:{p}", "precision against full")
        for p in precision_names if p != REFERENCE_PRECISION and REFERENCE_PRECISION in precision_names
    ]
    unknown = sorted({name for a, b, _ in primary + secondary for name in (a, b) if name not in groups})
    if unknown:
        raise ValueError(f"statistics.primary / pairs name unknown variant group(s): {', '.join(unknown)}")
    asked = [(*pair, "primary") for pair in primary] + [(*pair, "secondary") for pair in secondary + precision_pairs]
    tests = [
        paired_comparison(
            a=[f_scores(v) for v in by_name[a]], b=[f_scores(v) for v in by_name[b]],
            resamples=resamples, seed=seed + index, confidence=confidence,
        )
        for index, (a, b, _, _) in enumerate(asked)
    ]
    max_gap = statistics.get("max_quality_gap", DEFAULT_MAX_GAP)
    records = []
    for (a, b, why, family), test, (p_adjusted, holm, size) in zip(asked, tests, _adjust(asked, tests)):
        described = f"{family} family of {size}" if holm else "the primary question, tested alone"
        supported, reason = verdict(test, p_adjusted=p_adjusted, holm=holm, family=described, alpha=alpha)
        record = {
            "a": a.removeprefix("precision:"), "b": b.removeprefix("precision:"), "why": why,
            "family": family, "family_size": size, "adjustment": "Holm" if holm else "none",
            **test.to_dict(), "p_adjusted": p_adjusted, "supported": supported, "reason": reason,
        }
        gap = quality_gap(record, max_gap=max_gap)
        records.append({**record, **({"quality_gap": gap} if gap else {})})
    comparisons = [r for r, q in zip(records, asked) if not q[0].startswith("precision:")]
    return {
        "run": {
            "metric": metric, "resamples": resamples, "seed": seed, "confidence": confidence, "alpha": alpha,
            "examples": len(ids), "primary": [[a, b] for a, b, _ in primary], "max_quality_gap": max_gap,
            "precision_reference": REFERENCE_PRECISION if precision_pairs else None,
        },
        "variants": per_variant,
        "groups": {name: _group_info([f_scores(v) for v in members], [v.name for v in members]) for name, members in groups.items()},
        "comparisons": comparisons,
        "verdicts": [{**r, "text": verdict_text(r, metric=metric)} for r in comparisons if r["family"] == "primary"],
        "precisions": [r for r, q in zip(records, asked) if q[0].startswith("precision:")],
        "precision_variants": {p.name: describe(p)[0] for p in precisions},
        "failure_modes_per_example": {name: [{"id": i, **m} for i, m in zip(ids, rows)] for name, rows in failures.items()},
    }


def _adjust(asked: Sequence[tuple[str, str, str, str]], tests: Sequence[PairedComparison]) -> list[tuple[float, bool, int]]:
    """(p the decision uses, Holm-adjusted?, family size) per test, in the order asked. A lone
    primary question is the pre-registered endpoint: tested at alpha, unadjusted. Several
    primary questions, and all secondary comparisons, are Holm-adjusted in their family."""
    out: list[tuple[float, bool, int]] = [(1.0, False, 0)] * len(asked)
    for family in ("primary", "secondary"):
        members = [i for i, q in enumerate(asked) if q[3] == family]
        raw = [tests[i].p_value for i in members]
        holm = not (family == "primary" and len(members) == 1)
        for i, p in zip(members, holm_adjust(raw) if holm else raw):
            out[i] = (p, holm, len(members))
    return out


def _group_info(per_seed: Sequence[Sequence[float]], variants: Sequence[str]) -> dict[str, Any]:
    means = [float(np.mean(scores)) for scores in per_seed]
    return {
        "variants": list(variants),
        "seeds": len(means),
        "per_seed_means": means,
        "mean": float(np.mean(means)),
        "seed_std": float(np.std(means, ddof=1)) if len(means) > 1 else 0.0,
    }


def quality_gap(record: Mapping[str, Any], *, max_gap: float) -> dict[str, Any] | None:
    """Study 4's "LoRA within max_gap of full fine-tuning", judged on the interval
    (non-inferiority), not the point estimate; None for a record that is not LoRA vs FFT.
    The record's difference is b - a; with a = LoRA, b = FFT it is FFT - LoRA, and LoRA is
    within the gap when that interval's upper end is below max_gap."""
    lora_first = bool(_LORA_GROUP.match(record["a"])) and bool(_FFT_GROUP.match(record["b"]))
    fft_first = bool(_FFT_GROUP.match(record["a"])) and bool(_LORA_GROUP.match(record["b"]))
    if not (lora_first or fft_first):
        return None
    interval = record["difference"]
    # The worst case for LoRA: the largest plausible lead of FFT over LoRA.
    worst = interval["high"] if lora_first else -interval["low"]
    holds = worst < max_gap
    return {
        "max_gap": max_gap,
        "holds": holds,
        "basis": (
            f"FFT - LoRA is at most {worst:+.4f} at the upper end of its {interval['confidence']:.0%} interval, "
            f"{'below' if holds else 'not below'} {max_gap:g}: judged on the interval, not the point estimate"
        ),
    }


def verdict_text(comparison: Mapping[str, Any], *, metric: str) -> str:
    """'lora-r32-qv-n100 vs lora-r8-qv-n100: difference X [low, high], p=Y, over S seeds:
    supported / not supported (why, naming the p the decision used)'."""
    difference = comparison["difference"]
    seeds = min(comparison["seeds_a"], comparison["seeds_b"])
    status = "supported" if comparison["supported"] else "not supported"
    return (
        f"{comparison['b']} vs {comparison['a']}: "
        f"{metric} F difference {difference['mean']:+.4f} "
        f"[{difference['low']:+.4f}, {difference['high']:+.4f}], p={comparison['p_value']:.3g}, "
        f"over {seeds} seed{'s' if seeds != 1 else ''}: {status} ({comparison['reason']})"
    )


def unknown_pair_names(*, pairs: Sequence[Sequence[str]], variants: Sequence[str]) -> list[str]:
    """Names in `statistics.pairs` that are not a variant group of this config."""
    groups = {group_of(v) for v in variants}
    return sorted({name for pair in pairs for name in pair if name not in groups})
