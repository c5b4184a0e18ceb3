"""Choosing each method's learning rate on the validation split (torch-free).

A sweep trains a method (LoRA at one rank, kind and targets; full fine-tuning) at several
learning rates, every seed at each. The rate chosen is the one with the lowest validation
loss (data.draw_validation: rows apart from the training, evaluation and drift texts),
averaged over seeds and then examples; exact ties go to the smaller rate, so the choice is
deterministic. Only the chosen rate's variants go on to the test-set stages: nothing is
selected on the test set. Each candidate's mean carries a studentised bootstrap interval
over validation examples (of the seed-averaged losses), which the report draws as the
validation curve.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lora_study.stats.distributions import t_quantile
from lora_study.stats.inference import bootstrap_ci

CRITERION = (
    "lowest validation loss (mean cross-entropy per reference token), averaged over seeds and "
    "validation examples; ties to the smaller rate"
)


def choose_rate(
    *,
    candidates: Mapping[float, Sequence[Mapping[str, Any]]],
    resamples: int,
    seed: int,
    confidence: float,
) -> dict[str, Any]:
    """selection.json's metrics from `candidates`: rate -> the validation.json results of its
    seeds (each with `run.variant`, `run.spec.seed` and `metrics.per_example`)."""
    if not candidates:
        raise ValueError("no candidate learning rates to choose from")
    rows = []
    for rate in sorted(candidates):
        results = candidates[rate]
        per_seed = np.asarray([[row["loss"] for row in r["metrics"]["per_example"]] for r in results], dtype=float)
        interval = bootstrap_ci(per_seed.mean(axis=0), resamples=resamples, seed=seed, confidence=confidence)
        rows.append(
            {
                "learning_rate": rate,
                "variants": [r["run"]["variant"] for r in results],
                "seed_means": {
                    str(r["run"]["spec"]["seed"]): float(m) for r, m in zip(results, per_seed.mean(axis=1), strict=True)
                },
                "mean_loss": float(per_seed.mean()),
                "interval": interval.to_dict(),
                "examples": per_seed.shape[1],
            }
        )
    # min over (loss, rate): exact ties go to the smaller rate.
    chosen = min(rows, key=lambda row: (row["mean_loss"], row["learning_rate"]))
    return {
        "criterion": CRITERION,
        "candidates": rows,
        "chosen": {"learning_rate": chosen["learning_rate"], "variants": chosen["variants"]},
        "chosen_per_seed": chosen_per_seed(rows),
    }


def chosen_per_seed(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Each seed's own choice (lowest loss of that seed; ties to the smaller rate): the spread
    of these is what the ratio of two methods' rates has an interval from."""
    seeds = sorted({s for row in rows for s in row["seed_means"]}, key=int)
    return {
        s: min((row["seed_means"][s], row["learning_rate"]) for row in rows if s in row["seed_means"])[1] for s in seeds
    }


def grid_edge(metrics: Mapping[str, Any]) -> str | None:
    """ "largest" or "smallest" when the chosen rate is an end of its candidate grid (two or more
    candidates), else None: a rate beyond that end was not tried, and the method's best rate
    may lie there."""
    rates = sorted(candidate["learning_rate"] for candidate in metrics["candidates"])
    chosen = metrics["chosen"]["learning_rate"]
    if len(rates) < 2:
        return None
    return "largest" if chosen == rates[-1] else "smallest" if chosen == rates[0] else None


def edge_text(*, method: str, edge: str | None) -> str | None:
    """The sentence a chosen rate at an end of its grid needs beside it; None inside the grid."""
    if edge is None:
        return None
    beyond = "larger" if edge == "largest" else "smaller"
    return f"{method}'s chosen rate is its grid's {edge}: a {beyond} rate was not tried and may do better"


def ratio_edge_text(*, numerator: Mapping[str, Any], denominator: Mapping[str, Any]) -> str | None:
    """What chosen rates at their grids' ends leave open about numerator / denominator: which
    way the ratio of the methods' best rates may differ from the chosen rates' ratio."""
    above, below = grid_edge(numerator), grid_edge(denominator)  # the ratio's two rates
    high = above == "largest" or below == "smallest"
    low = above == "smallest" or below == "largest"
    if high and low:
        return "a chosen rate at an end of its grid: the ratio of the best rates may be larger or smaller"
    if high:
        return "a chosen rate at an end of its grid: the ratio of the best rates may be larger than this"
    if low:
        return "a chosen rate at an end of its grid: the ratio of the best rates may be smaller than this"
    return None


def rate_ratio(*, numerator: Mapping[str, Any], denominator: Mapping[str, Any], confidence: float) -> dict[str, Any]:
    """The ratio of two methods' chosen rates (e.g. LoRA's best over full fine-tuning's) from
    their selection metrics; with two or more seeds on both, a t interval of the per-seed
    ratios on the log scale (a ratio is positive), else no interval and the reason."""
    ratio = numerator["chosen"]["learning_rate"] / denominator["chosen"]["learning_rate"]
    seeds = sorted(set(numerator["chosen_per_seed"]) & set(denominator["chosen_per_seed"]), key=int)
    logs = [math.log(numerator["chosen_per_seed"][s] / denominator["chosen_per_seed"][s]) for s in seeds]
    result: dict[str, Any] = {"ratio": ratio, "seeds": len(seeds), "per_seed": [math.exp(x) for x in logs]}
    if len(logs) < 2:
        return result | {"interval": None, "why_no_interval": "one seed: the per-seed choices give no spread"}
    mean, sd = float(np.mean(logs)), float(np.std(logs, ddof=1))
    half = t_quantile(1 - (1 - confidence) / 2, df=len(logs) - 1) * sd / math.sqrt(len(logs))
    interval = {"low": math.exp(mean - half), "high": math.exp(mean + half), "confidence": confidence}
    return result | {
        "interval": interval,
        "method": "t interval of the log per-seed ratio, exponentiated (the rates form a grid, so it is coarse)",
    }
