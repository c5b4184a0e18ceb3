"""Comparisons between variants on the same evaluation examples: intervals, paired
tests in two families (the primary question; everything else, quantised precisions
against `full` included, Holm-corrected), seed spread, failure modes, the LoRA-vs-FFT
quality gap and the verdict on the primary question. docs/STATISTICS.md explains each.

Variants that differ only by seed form a group (`lora-r8-qv-n100-s1`, `-s2`, ... make
`lora-r8-qv-n100`); comparisons are between groups, so several seeds are used together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any

import numpy as np

from lora_study.grid import BASE_VARIANT, VariantSpec, group_of, group_specs
from lora_study.stats import (
    Interval,
    PairedComparison,
    bootstrap_ci,
    holm_adjust,
    paired_comparison,
    verdict,
    wilson_interval,
    within,
)
from lora_study.tasks import metric_of, summarise_failures, task_of

REFERENCE_PRECISION = "full"  # quantised precisions are tested against this one
DEFAULT_MAX_GAP = 0.03  # Study 4: LoRA within 3 points (of the metric, on a 0-1 scale) of full fine-tuning


Groups = Mapping[str, VariantSpec | None]  # group name -> the spec of its first seed (base: None)


@dataclass(frozen=True)
class VariantScores:
    name: str
    spec: VariantSpec | None  # from scores.json's run.spec; None for the base model and precisions
    per_example: Sequence[Mapping[str, Any]]  # scores.json's metrics.per_example rows (each with `values`)
    predictions: Sequence[Mapping[str, Any]]  # predictions.jsonl rows


def _lora_families(groups: Groups) -> list[list[str]]:
    """LoRA groups that differ only by rank (same kind, targets and training size), each
    sorted by rank."""
    families: dict[tuple[str, str | None, int], list[tuple[int, str]]] = {}
    for group, spec in groups.items():
        if spec is not None and spec.is_lora and spec.rank is not None:
            families.setdefault((spec.kind, spec.targets, spec.train_size), []).append((spec.rank, group))
    return [[group for _, group in sorted(ranked)] for ranked in families.values()]


def default_pairs(groups: Groups) -> list[tuple[str, str, str]]:
    """(a, b, why): each LoRA rank against the next higher one of the same family, targets
    and training size, and each LoRA group against full fine-tuning on the same size."""
    pairs = []
    for family in _lora_families(groups):
        pairs += [(low, high, "rank against the next rank") for low, high in pairwise(family)]
    for group, spec in groups.items():
        if spec is not None and spec.fft_group in groups:
            pairs.append((group, spec.fft_group, "LoRA against full fine-tuning"))
    return pairs


def rank_questions(groups: Groups) -> list[tuple[str, str]]:
    """(lowest rank, highest rank) per LoRA family, targets and size: the study's
    "does a higher rank collapse with little data" question."""
    return [(family[0], family[-1]) for family in _lora_families(groups) if len(family) > 1]


def primary_questions(*, groups: Groups, primary: Sequence[str] | None) -> list[tuple[str, str, str]]:
    """The study's declared primary question(s): the configured [a, b] pair, or by default
    the rank question of every LoRA family, targets and size."""
    if primary:
        return [(primary[0], primary[1], "primary question (configured)")]
    return [(low, high, "primary: lowest against highest rank") for low, high in rank_questions(groups)]


def secondary_pairs(
    *, groups: Groups, pairs: Sequence[Sequence[str]], exclude: Sequence[tuple[str, str, str]]
) -> list[tuple[str, str, str]]:
    """Every other comparison: against the base, rank against the next rank, LoRA against
    FFT, configured pairs; a pair already asked (in either order) is not asked twice."""
    against_base = [
        (BASE_VARIANT, g, "against the base model") for g in groups if g != BASE_VARIANT and BASE_VARIANT in groups
    ]
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
    task: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the report needs to say whether differences are real, as comparisons.json's
    `run` (the settings and the questions asked) and `metrics`. `task`: the config's task
    block (None: summarisation), whose metrics, failure modes and own statistics are used.

    Two families of tests (docs/STATISTICS.md): the primary question, tested alone at
    alpha (several rank questions: Holm among themselves), and every other comparison,
    quantised precisions against `full` included, under one Holm correction."""
    chosen, task_settings = task_of({"task": task} if task else {})
    metric, resamples, seed, confidence = (
        metric_of(task=chosen, statistics=statistics),
        statistics["resamples"],
        statistics["seed"],
        statistics["confidence"],
    )
    alpha = round(1 - confidence, 12)  # the tests' level matches the intervals'
    ids = [row["id"] for row in variants[0].per_example]
    for variant in [*variants, *precisions]:
        if [row["id"] for row in variant.per_example] != ids:
            raise ValueError(f"{variant.name} was scored on other examples than {variants[0].name}")

    def f_scores(variant: VariantScores, kind: str = metric) -> list[float]:
        return [float(row["values"][kind]) for row in variant.per_example]

    def interval(values: list[float], kind: str) -> Interval:
        """A 0/1 metric (accuracy, exact match): Wilson's interval, which no run of identical
        outcomes collapses; a graded one (ROUGE, F1): the studentised bootstrap. Every metric is
        a mean of values in [0, 1], so the interval is kept inside."""
        if kind in chosen.binary_metrics:
            return wilson_interval(values, confidence=confidence)
        return within(bootstrap_ci(values, resamples=resamples, seed=seed, confidence=confidence), low=0.0, high=1.0)

    def describe(variant: VariantScores) -> tuple[dict[str, Any], list[dict[str, float]]]:
        intervals = {kind: interval(f_scores(variant, kind), kind).to_dict() for kind in chosen.metrics}
        measures = [
            chosen.failure_measure(
                row=row, source=eval_inputs[row["id"]], instruction=instruction, settings=task_settings
            )
            for row in variant.predictions
        ]
        own = chosen.variant_statistics(per_example=variant.per_example, statistics=statistics, settings=task_settings)
        info = {"intervals": intervals, "failure_modes": summarise_failures(task=chosen, per_example=measures)}
        return info | ({"task_statistics": own} if own else {}), measures

    per_variant, failures = {}, {}
    for variant in variants:
        info, failures[variant.name] = describe(variant)
        per_variant[variant.name] = {"group": group_of(variant.spec), **info}

    groups: dict[str, list[VariantScores]] = {}
    for variant in variants:
        groups.setdefault(group_of(variant.spec), []).append(variant)
    # Precisions are deterministic single runs of the base model, compared like groups.
    by_name = {**groups, **{f"precision:{p.name}": [p] for p in precisions}}
    specs = group_specs(v.spec for v in variants)
    primary = primary_questions(groups=specs, primary=statistics.get("primary"))
    secondary = secondary_pairs(groups=specs, pairs=statistics.get("pairs", []), exclude=primary)
    precision_names = [p.name for p in precisions]
    precision_pairs = [
        (f"precision:{REFERENCE_PRECISION}", f"precision:{p}", "precision against full")
        for p in precision_names
        if p != REFERENCE_PRECISION and REFERENCE_PRECISION in precision_names
    ]
    unknown = sorted({name for a, b, _ in primary + secondary for name in (a, b) if name not in groups})
    if unknown:
        raise ValueError(f"statistics.primary / pairs name unknown variant group(s): {', '.join(unknown)}")
    asked = [(*pair, "primary") for pair in primary] + [(*pair, "secondary") for pair in secondary + precision_pairs]
    tests = [
        _bounded(
            paired_comparison(
                a=[f_scores(v) for v in by_name[a]],
                b=[f_scores(v) for v in by_name[b]],
                resamples=resamples,
                seed=seed + index,
                confidence=confidence,
                # 0/1 outcomes (accuracy, exact match): an interval for paired proportions keeps its level.
                binary=metric in chosen.binary_metrics,
            )
        )
        for index, (a, b, _, _) in enumerate(asked)
    ]
    max_gap = statistics.get("max_quality_gap", DEFAULT_MAX_GAP)
    records = []
    for (a, b, why, family), test, (p_adjusted, holm, size) in zip(asked, tests, _adjust(asked, tests), strict=True):
        described = f"{family} family of {size}" if holm else "the primary question, tested alone"
        supported, reason = verdict(test, p_adjusted=p_adjusted, holm=holm, family=described, alpha=alpha)
        record = {
            "a": a.removeprefix("precision:"),
            "b": b.removeprefix("precision:"),
            "why": why,
            "family": family,
            "family_size": size,
            "adjustment": "Holm" if holm else "none",
            **test.to_dict(),
            "p_adjusted": p_adjusted,
            "supported": supported,
            "reason": reason,
        }
        own = chosen.paired_statistics(
            a=[v.per_example for v in by_name[a]],
            b=[v.per_example for v in by_name[b]],
            statistics=statistics,
            seed=seed + len(asked) + len(records),
            settings=task_settings,
        )
        if own:
            record["task_statistics"] = own
        gap = quality_gap(record, groups=specs, max_gap=max_gap)
        records.append({**record, **({"quality_gap": gap} if gap else {})})
    comparisons = [r for r, q in zip(records, asked, strict=True) if not q[0].startswith("precision:")]
    return {
        "run": {
            "task": chosen.name,
            "metric": metric,
            "metric_label": chosen.metric_labels[metric],
            "resamples": resamples,
            "seed": seed,
            "confidence": confidence,
            "alpha": alpha,
            "examples": len(ids),
            "primary": [[a, b] for a, b, _ in primary],
            "max_quality_gap": max_gap,
            "precision_reference": REFERENCE_PRECISION if precision_pairs else None,
        },
        "metrics": {
            "variants": per_variant,
            "groups": {
                name: _group_info([f_scores(v) for v in members], [v.name for v in members])
                for name, members in groups.items()
            },
            "comparisons": comparisons,
            "verdicts": [
                {**r, "text": verdict_text(r, metric=chosen.metric_labels[metric])}
                for r in comparisons
                if r["family"] == "primary"
            ],
            "precisions": [r for r, q in zip(records, asked, strict=True) if q[0].startswith("precision:")],
            "precision_variants": {p.name: describe(p)[0] for p in precisions},
            "failure_modes_per_example": {
                name: [{"id": i, **m} for i, m in zip(ids, rows, strict=True)] for name, rows in failures.items()
            },
        },
    }


def _bounded(test: PairedComparison) -> PairedComparison:
    """The difference of two means of [0, 1] scores lies in [-1, 1]; its interval is kept there."""
    return replace(test, difference=within(test.difference, low=-1.0, high=1.0))


def _adjust(
    asked: Sequence[tuple[str, str, str, str]], tests: Sequence[PairedComparison]
) -> list[tuple[float, bool, int]]:
    """(p the decision uses, Holm-adjusted?, family size) per test, in the order asked. A lone
    primary question is the pre-registered endpoint: tested at alpha, unadjusted. Several
    primary questions, and all secondary comparisons, are Holm-adjusted in their family."""
    out: list[tuple[float, bool, int]] = [(1.0, False, 0)] * len(asked)
    for family in ("primary", "secondary"):
        members = [i for i, q in enumerate(asked) if q[3] == family]
        raw = [tests[i].p_value for i in members]
        holm = not (family == "primary" and len(members) == 1)
        for i, p in zip(members, holm_adjust(raw) if holm else raw, strict=True):
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


def quality_gap(record: Mapping[str, Any], *, groups: Groups, max_gap: float) -> dict[str, Any] | None:
    """Study 4's "LoRA within max_gap of full fine-tuning", judged on the interval
    (non-inferiority), not the point estimate; None for a record that is not LoRA vs FFT.
    The record's difference is b - a; with a = LoRA, b = FFT it is FFT - LoRA, and LoRA is
    within the gap when that interval's upper end is below max_gap."""
    a, b = groups.get(record["a"]), groups.get(record["b"])
    lora_first = a is not None and a.fft_group == record["b"]
    fft_first = b is not None and b.fft_group == record["a"]
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
        f"{metric} difference {difference['mean']:+.4f} "
        f"[{difference['low']:+.4f}, {difference['high']:+.4f}], p={comparison['p_value']:.3g}, "
        f"over {seeds} seed{'s' if seeds != 1 else ''}: {status} ({comparison['reason']})"
    )
