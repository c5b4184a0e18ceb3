"""Comparisons between variants on the same evaluation examples: intervals, paired
tests in two families (the primary question; everything else, quantised precisions
against `full` included, Holm-corrected), seed spread, failure modes, the LoRA-vs-FFT
quality gap and the verdict on the primary question. docs/STATISTICS.md explains each.

Variants that differ only by seed form a group (`lora-r8-qv-n100-lr2e-4-0a2037-s1`, `-s2`,
... make `lora-r8-qv-n100`: within one study a method has one rate and one setting of
everything else, checked here); comparisons are between groups, so several seeds are used
together.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any

import numpy as np

from lora_study.core.grid import BASE_VARIANT, VariantSpec, fft_partner, group_of, group_specs
from lora_study.stats.inference import (
    Interval,
    PairedComparison,
    bootstrap_ci,
    holm_adjust,
    paired_comparison,
    verdict,
    wilson_interval,
    within,
)
from lora_study.stats.power import POWER, SeedSpread, detectable
from lora_study.tasks import metric_of, summarise_failures, task_of

REFERENCE_PRECISION = "full"  # quantised precisions are tested against this one
DEFAULT_MAX_GAP = 0.03  # Study 4: LoRA within 3 points (of the metric, on a 0-1 scale) of full fine-tuning
DEFAULT_EFFECT_SIZE = 0.03  # the difference that matters for every other comparison (statistics.effect_size)


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
        partner = fft_partner(spec, groups)
        if partner is not None:
            pairs.append((group, partner, "LoRA against full fine-tuning"))
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
    available_examples: int | None = None,
) -> dict[str, Any]:
    """Everything the report needs to say whether differences are real, as comparisons.json's
    `run` (the settings and the questions asked) and `metrics`. `task`: the config's task
    block (None: summarisation), whose metrics, failure modes and own statistics are used.
    `available_examples`: the size of the split the evaluation examples were drawn from, where
    known (the examples a run could use at most; the needed examples are set against it).

    Two families of tests (docs/STATISTICS.md): the primary question, tested alone at
    alpha (several rank questions: Holm among themselves), and every other comparison,
    quantised precisions against `full` included, under one Holm correction. Every
    comparison carries what the run could have detected (`detectable`), and every "not
    supported" says it."""
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
    check_groups_differ_only_by_seed(groups)
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
    effect_size = statistics.get("effect_size", DEFAULT_EFFECT_SIZE)
    records = []
    for (a, b, why, family), test, (p_adjusted, holm, size) in zip(asked, tests, _adjust(asked, tests), strict=True):
        described = f"{family} family of {size}" if holm else "the primary question, tested alone"
        lora_vs_fft = _lora_against_fft(a, b, groups=specs)
        could = detectable(
            differences_sd=test.example_sd,
            examples=test.examples,
            **_detection_level(alpha=alpha, holm=holm, family=family, size=size),
            effect=max_gap if lora_vs_fft else effect_size,
            effect_source="statistics.max_quality_gap" if lora_vs_fft else "statistics.effect_size",
            seed_spread=_seed_spread(test),
            available_examples=available_examples,
            seed=seed,
        )
        supported, reason = verdict(
            test, p_adjusted=p_adjusted, holm=holm, family=described, alpha=alpha, detectable=could
        )
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
            "detectable": could.to_dict(),
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
        if gap:
            # What the gap's judgement could have shown: the margin the interval would have put
            # LoRA within, were it equal to FFT (the interval's level, not adjusted, as judged).
            gap["detectable"] = could_show = detectable(
                differences_sd=test.example_sd,
                examples=test.examples,
                alpha=alpha,
                alpha_rule=f"the {confidence:.0%} interval the quality gap is judged on (one-sided {alpha / 2:g}), "
                "not adjusted for multiplicity",
                effect=max_gap,
                effect_source="statistics.max_quality_gap",
                seed_spread=_seed_spread(test),
                available_examples=available_examples,
                margin=True,
                seed=seed,
            ).to_dict()
            gap["not_shown"] = None if gap["holds"] else _gap_not_shown(record, gap=gap, could=could_show)
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
            "effect_size": effect_size,
            "power": POWER,
            "available_examples": available_examples,
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


def check_groups_differ_only_by_seed(groups: Mapping[str, Sequence[VariantScores]]) -> None:
    """A group pools its variants as seeds of one thing: refuse variants of one method that
    differ in anything but the seed (two learning rates, say), naming them."""
    for group, members in groups.items():
        specs = {json.dumps(replace(m.spec, seed=0).to_dict(), sort_keys=True) for m in members if m.spec is not None}
        if len(specs) > 1:
            names = ", ".join(m.name for m in members)
            raise ValueError(
                f"variants of {group} differ in more than their seed ({names}): compare one setting per method, "
                "e.g. the rate a sweep chose"
            )


def _bounded(test: PairedComparison) -> PairedComparison:
    """The difference of two means of [0, 1] scores lies in [-1, 1]; its interval is kept there."""
    return replace(test, difference=within(test.difference, low=-1.0, high=1.0))


def _detection_level(*, alpha: float, holm: bool, family: str, size: int) -> dict[str, Any]:
    """The level a comparison's detectable effect is computed at, and why. A lone primary
    question is decided at alpha. In a Holm family of m, alpha / m (Holm's first step): a
    comparison whose raw p is below it is called whatever the other p-values are, so the
    detectable effect holds for every comparison of the family; Holm lets the k-th smallest p
    be called at up to alpha / (m - k + 1) once the k - 1 before it are, which depends on the
    others' outcomes and could only make the detectable effect smaller."""
    if not holm:
        return {"alpha": alpha, "alpha_rule": f"the lone primary question: tested alone at alpha = {alpha:g}"}
    return {
        "alpha": alpha / size,
        "alpha_rule": f"Holm's first step in the {family} family of {size}: alpha / {size} = {alpha / size:.3g}, "
        "the level at which it is called whatever the other comparisons' p-values",
    }


def _seed_spread(test: PairedComparison) -> SeedSpread:
    return SeedSpread(seeds_a=test.seeds_a, sd_a=test.seed_std_a, seeds_b=test.seeds_b, sd_b=test.seed_std_b)


def _lora_against_fft(a: str, b: str, *, groups: Groups) -> bool:
    """Whether a and b are a LoRA group and the full fine-tuning on its data (either order):
    Study 4's quality question, whose effect that matters is statistics.max_quality_gap."""
    return fft_partner(groups.get(a), groups) == b or fft_partner(groups.get(b), groups) == a


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
    lora_first = a is not None and fft_partner(a, groups) == record["b"]
    fft_first = b is not None and fft_partner(b, groups) == record["a"]
    if not (lora_first or fft_first):
        return None
    interval = record["difference"]
    # The worst case for LoRA: the largest plausible lead of FFT over LoRA.
    worst = interval["high"] if lora_first else -interval["low"]
    holds = worst < max_gap
    return {
        "max_gap": max_gap,
        "holds": holds,
        "lora_first": lora_first,  # a is LoRA (b - a = FFT - LoRA); else a is FFT
        "basis": (
            f"FFT - LoRA is at most {worst:+.4f} at the upper end of its {interval['confidence']:.0%} interval, "
            f"{'below' if holds else 'not below'} {max_gap:g}: judged on the interval, not the point estimate"
        ),
    }


def _gap_not_shown(record: Mapping[str, Any], *, gap: Mapping[str, Any], could: Mapping[str, Any]) -> str:
    """Why "LoRA within the gap of FFT" is not shown: the interval puts FFT's lead wholly above
    the gap (LoRA trails by more, at the interval's level), or the run could (or could not)
    have shown it had the two been equal (`could`: the margin's detectable effect)."""
    interval, max_gap = record["difference"], gap["max_gap"]
    # FFT - LoRA at its most favourable to LoRA: the lower end with a = LoRA, else minus the upper.
    lead = interval["low"] if gap["lora_first"] else -interval["high"]
    if lead > max_gap:
        return (
            f"full fine-tuning leads by more than {max_gap:g}: FFT - LoRA is at least {lead:+.4f} over its "
            f"{interval['confidence']:.0%} interval"
        )
    return could["text"]


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
