"""Comparisons between variants on the same evaluation examples: intervals, paired
tests, seed spread, failure modes and the verdict on the rank question.

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
from lora_study.stats import bootstrap_ci, paired_comparison, verdict

_SEED_SUFFIX = re.compile(r"-s(\d+)$")
_LORA_GROUP = re.compile(r"^(?P<family>(lora|dora|rslora|qlora)-)r(?P<rank>\d+)(?P<rest>-.+-n\d+)$")


@dataclass(frozen=True)
class VariantScores:
    name: str
    per_example: Sequence[Mapping[str, Any]]  # rouge.json's per_example rows
    predictions: Sequence[Mapping[str, Any]]  # predictions.jsonl rows


def group_of(variant: str) -> str:
    """The variant's name without its seed: variants of one group differ only by seed."""
    return _SEED_SUFFIX.sub("", variant)


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
            size = re.search(r"-n(\d+)$", group)[1]
            if f"fft-n{size}" in groups:
                pairs.append((group, f"fft-n{size}", "LoRA against full fine-tuning"))
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


def compare_variants(
    *,
    variants: Sequence[VariantScores],
    eval_inputs: Mapping[str, str],
    instruction: str,
    statistics: Mapping[str, Any],
) -> dict[str, Any]:
    """Everything the report needs to say whether differences are real."""
    metric, resamples, seed, confidence = (
        statistics["metric"], statistics["resamples"], statistics["seed"], statistics["confidence"]
    )
    ids = [row["id"] for row in variants[0].per_example]
    for variant in variants:
        if [row["id"] for row in variant.per_example] != ids:
            raise ValueError(f"{variant.name} was scored on other examples than {variants[0].name}")

    def f_scores(variant: VariantScores, kind: str = metric) -> list[float]:
        return [row[kind]["fmeasure"] for row in variant.per_example]

    per_variant = {}
    failures = {}
    for variant in variants:
        intervals = {kind: bootstrap_ci(f_scores(variant, kind), resamples=resamples, seed=seed, confidence=confidence).to_dict() for kind in ROUGE_TYPES}
        measures = [
            measure(prediction=row["prediction"], source=eval_inputs[row["id"]], reference=row["reference"], instruction=instruction)
            for row in variant.predictions
        ]
        failures[variant.name] = measures
        per_variant[variant.name] = {"group": group_of(variant.name), "rouge": intervals, "failure_modes": summarise(measures)}

    groups: dict[str, list[VariantScores]] = {}
    for variant in variants:
        groups.setdefault(group_of(variant.name), []).append(variant)
    group_info = {
        name: {
            "variants": [v.name for v in members],
            "seeds": len(members),
            "per_seed_means": [float(np.mean(f_scores(v))) for v in members],
            "mean": float(np.mean([np.mean(f_scores(v)) for v in members])),
            "seed_std": float(np.std([np.mean(f_scores(v)) for v in members], ddof=1)) if len(members) > 1 else 0.0,
        }
        for name, members in groups.items()
    }

    names = list(groups)

    def compare(a: str, b: str, why: str, index: int) -> dict[str, Any]:
        result = paired_comparison(
            a=[f_scores(v) for v in groups[a]], b=[f_scores(v) for v in groups[b]],
            resamples=resamples, seed=seed + index, confidence=confidence,
        )
        supported, reason = verdict(result)
        return {"a": a, "b": b, "why": why, **result.to_dict(), "supported": supported, "reason": reason}

    against_base = [("base", g, "against the base model") for g in names if g != "base" and "base" in groups]
    requested = [(a, b, "configured") for a, b in statistics.get("pairs", [])]
    comparisons = [compare(a, b, why, index) for index, (a, b, why) in enumerate(against_base + default_pairs(names) + requested)]

    verdicts = []
    for low, high in rank_questions(names):
        existing = [c for c in comparisons if (c["a"], c["b"]) == (low, high)]
        chosen = existing[0] if existing else compare(low, high, "lowest against highest rank", len(comparisons))
        verdicts.append({**chosen, "text": verdict_text(chosen, metric=metric)})

    return {
        "run": {"metric": metric, "resamples": resamples, "seed": seed, "confidence": confidence, "examples": len(ids)},
        "variants": per_variant,
        "groups": group_info,
        "comparisons": comparisons,
        "verdicts": verdicts,
        "failure_modes_per_example": {name: [{"id": i, **m} for i, m in zip(ids, rows)] for name, rows in failures.items()},
    }


def verdict_text(comparison: Mapping[str, Any], *, metric: str) -> str:
    """'r=32 vs r=8: difference X [low, high], p=Y, over S seeds: supported / not supported (why)'."""
    rank = lambda group: re.search(r"-r(\d+)-", group)[1]  # noqa: E731
    difference = comparison["difference"]
    seeds = min(comparison["seeds_a"], comparison["seeds_b"])
    status = "supported" if comparison["supported"] else "not supported"
    return (
        f"r={rank(comparison['b'])} vs r={rank(comparison['a'])} ({comparison['a'].split('-', 2)[2]}): "
        f"{metric} F difference {difference['mean']:+.4f} "
        f"[{difference['low']:+.4f}, {difference['high']:+.4f}], p={comparison['p_value']:.3g}, "
        f"over {seeds} seed{'s' if seeds != 1 else ''}: {status} ({comparison['reason']})"
    )


def unknown_pair_names(*, pairs: Sequence[Sequence[str]], variants: Sequence[str]) -> list[str]:
    """Names in `statistics.pairs` that are not a variant group of this config."""
    groups = {group_of(v) for v in variants}
    return sorted({name for pair in pairs for name in pair if name not in groups})
