"""Coverage of the study's intervals at 20 examples, per data shape: how often the 95% interval
holds the true mean, measured with the very functions the comparisons call.

    python bench/interval_coverage.py                               # 10,000 data sets x 2000 resamples
    python bench/interval_coverage.py --datasets 2000 --resamples 1000   # quicker, +-0.5 points
    python bench/record_bench.py --out docs/results --quiet -- python bench/interval_coverage.py

Graded shapes (simulated): normal, exponential, lognormal (sigma 1), ROUGE-like paired
differences with 30% and with 85% exact ties, without and with a real effect; each with the studentised bootstrap (t floor, BCa
fallback: `stats.intervals_from_resamples`) and, for reference, the percentile bootstrap of the
same resamples. Paired 0/1 outcomes (accuracy or exact match of two models on the same
examples): the bootstrap of the differences against the paired-proportion interval
(`stats.paired_proportion_intervals`), simulated at a few settings and computed exactly over a
grid of disagreement rates: both intervals depend on the data only through n12 and n21 (the
examples only one model gets right), so coverage is a sum of trinomial probabilities.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from lora_study.stats.inference import intervals_from_resamples, paired_proportion_intervals

CONFIDENCE = 0.95
Draw = Callable[[np.random.Generator, tuple[int, int]], np.ndarray]


def rouge_differences(*, ties: float, shift: float) -> Draw:
    """b - a of ROUGE-like scores: a ~ Beta(2, 6); b equals a on a share `ties` of the examples,
    else a plus normal noise (mean `shift`, a real effect on the examples that changed; sd 0.08),
    clipped to [0, 1]."""

    def draw(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
        a = rng.beta(2, 6, size)
        b = np.where(rng.random(size) < ties, a, np.clip(a + rng.normal(shift, 0.08, size), 0, 1))
        return b - a

    return draw


def rouge_truth(*, ties: float, shift: float) -> float:
    """The population mean of `rouge_differences` (2 million draws, fixed seeds)."""
    big = np.random.default_rng(99).beta(2, 6, 2_000_000)
    moved = np.clip(big + np.random.default_rng(98).normal(shift, 0.08, big.size), 0, 1) - big
    return (1 - ties) * float(moved.mean())


def paired_outcomes(*, only_a: float, only_b: float, size: tuple[int, int], rng: np.random.Generator):
    """Paired 0/1 outcomes: a share `only_a` of examples only a gets right, `only_b` only b, the
    rest split evenly between both right and both wrong (the interval depends only on the first two)."""
    cell = rng.choice(4, p=[only_a, only_b, (1 - only_a - only_b) / 2, (1 - only_a - only_b) / 2], size=size)
    a = ((cell == 0) | (cell == 2)).astype(float)
    b = ((cell == 1) | (cell == 2)).astype(float)
    return a, b


def bootstrap_coverage(
    data: np.ndarray, truth: float, *, resamples: int, rng: np.random.Generator
) -> tuple[float, float]:
    """(studentised, percentile) coverage over the rows of `data`, 100 rows at a time."""
    hits = percentile_hits = 0
    rows, n = data.shape
    for start in range(0, rows, 100):
        chunk = data[start : start + 100]
        indices = rng.integers(0, n, size=(chunk.shape[0], resamples, n))
        low, high, _ = intervals_from_resamples(chunk, indices, confidence=CONFIDENCE)
        hits += int(np.sum((low <= truth) & (truth <= high)))
        means = np.take_along_axis(chunk[:, None, :], indices, axis=2).mean(axis=2)
        p_low, p_high = np.quantile(means, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2], axis=1)
        percentile_hits += int(np.sum((p_low <= truth) & (truth <= p_high)))
    return hits / rows, percentile_hits / rows


def count_intervals(*, n: int, resamples: int, seed: int) -> dict[str, np.ndarray]:
    """Both intervals of paired 0/1 outcomes for every (n12, n21) with n12 + n21 <= n, as
    (n + 1, n + 1) arrays of low and high (nan where n12 + n21 > n)."""
    pairs = [(i, j) for i in range(n + 1) for j in range(n + 1 - i)]
    a = np.array([[1.0] * i + [0.0] * j + [1.0] * (n - i - j) for i, j in pairs])
    b = np.array([[0.0] * i + [1.0] * j + [1.0] * (n - i - j) for i, j in pairs])
    rng = np.random.default_rng(seed)
    out = {key: np.full((n + 1, n + 1), np.nan) for key in ("boot_low", "boot_high", "pp_low", "pp_high")}
    for start in range(0, len(pairs), 50):
        rows = slice(start, start + 50)
        d = b[rows] - a[rows]
        indices = rng.integers(0, n, size=(d.shape[0], resamples, n))
        low, high, _ = intervals_from_resamples(d, indices, confidence=CONFIDENCE)
        pp_low, pp_high = paired_proportion_intervals(a[rows], b[rows], confidence=CONFIDENCE)
        for (i, j), values in zip(pairs[rows], zip(low, high, pp_low, pp_high, strict=True), strict=True):
            for key, value in zip(out, values, strict=True):
                out[key][i, j] = value
    # The comparisons cut a difference's interval to [-1, 1]; the true value lies inside, so coverage is unchanged.
    out["boot_low"], out["boot_high"] = np.maximum(out["boot_low"], -1.0), np.minimum(out["boot_high"], 1.0)
    return out


def exact_coverage(low: np.ndarray, high: np.ndarray, *, only_a: float, only_b: float) -> float:
    """P(low <= p_b - p_a <= high) at 20 (or n) examples when a share `only_a` of examples only a
    gets right and `only_b` only b: a sum over the trinomial distribution of (n12, n21)."""
    n = low.shape[0] - 1
    truth, rest = only_b - only_a, 1.0 - only_a - only_b
    total = 0.0
    for i in range(n + 1):
        for j in range(n + 1 - i):
            k = n - i - j
            if (i and only_a == 0) or (j and only_b == 0) or (k and rest <= 0):
                continue
            log_p = math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(j + 1) - math.lgamma(k + 1)
            log_p += (i * math.log(only_a) if i else 0.0) + (j * math.log(only_b) if j else 0.0)
            log_p += k * math.log(rest) if k else 0.0
            if low[i, j] - 1e-12 <= truth <= high[i, j] + 1e-12:
                total += math.exp(log_p)
    return total


def grid(*, step: float, most: float) -> list[tuple[float, float]]:
    """(only_a, only_b) with both a multiple of `step` and together at most `most` (and above 0)."""
    steps = round(most / step)
    return [(i * step, j * step) for i in range(steps + 1) for j in range(steps + 1 - i) if i + j > 0]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=10_000, help="simulated data sets per shape")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples per data set")
    parser.add_argument("--n", type=int, default=20, help="examples per data set (the default evaluation set)")
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    n, datasets = args.n, args.datasets
    error = 100 * 1.96 * math.sqrt(0.95 * 0.05 / datasets)
    print(
        f"nominal {CONFIDENCE:.0%}, {n} examples, {datasets:,} simulated data sets x {args.resamples:,} resamples "
        f"per shape (Monte-Carlo error +-{error:.1f} points)"
    )
    print(f"{'data shape':<62} {'studentised':>11} {'percentile':>10} {'paired-prop.':>12}")
    rng = np.random.default_rng(args.seed)
    graded: list[tuple[str, Draw, float]] = [
        ("normal", lambda r, s: r.normal(0.0, 1.0, s), 0.0),
        ("exponential", lambda r, s: r.exponential(1.0, s), 1.0),
        ("lognormal (sigma 1)", lambda r, s: r.lognormal(0.0, 1.0, s), math.exp(0.5)),
    ]
    for ties in (0.3, 0.85):
        for shift in (0.0, 0.05):
            effect = f"the rest shifted {shift:+.2f}" if shift else "no effect"
            name = f"ROUGE-like differences, {ties:.0%} exact ties, {effect}"
            graded.append((name, rouge_differences(ties=ties, shift=shift), rouge_truth(ties=ties, shift=shift)))
    for name, draw, truth in graded:
        studentised, percentile = bootstrap_coverage(draw(rng, (datasets, n)), truth, resamples=args.resamples, rng=rng)
        print(f"{name:<62} {studentised:>11.1%} {percentile:>10.1%} {'-':>12}")
    settings = [(0.01, 0.11), (0.05, 0.15), (0.10, 0.10), (0.0, 0.2), (0.2, 0.3)]
    for only_a, only_b in settings:
        a, b = paired_outcomes(only_a=only_a, only_b=only_b, size=(datasets, n), rng=rng)
        studentised, percentile = bootstrap_coverage(b - a, only_b - only_a, resamples=args.resamples, rng=rng)
        low, high = paired_proportion_intervals(a, b, confidence=CONFIDENCE)
        proportion = float(np.mean((low <= only_b - only_a) & (only_b - only_a <= high)))
        name = f"paired 0/1 outcomes, only a right {only_a:.0%}, only b right {only_b:.0%}"
        print(f"{name:<62} {studentised:>11.1%} {percentile:>10.1%} {proportion:>12.1%}")

    intervals = count_intervals(n=n, resamples=args.resamples, seed=args.seed + 1)
    points = grid(step=0.02, most=0.6)
    print(
        f"\npaired 0/1 outcomes, exact over a grid of {len(points)} disagreement settings (only a right, only b "
        "right: multiples of 0.02, together at most 0.6)"
    )
    print(f"{'interval':<40} {'mean':>6} {'minimum (only a, only b)':>26} {'< 94%':>6} {'< 93%':>6}")
    for label, low, high in (
        ("studentised bootstrap of the differences", intervals["boot_low"], intervals["boot_high"]),
        ("paired-proportion (Bonett-Price)", intervals["pp_low"], intervals["pp_high"]),
    ):
        coverage = np.array([exact_coverage(low, high, only_a=x, only_b=y) for x, y in points])
        worst = int(np.argmin(coverage))
        at = f"{coverage[worst]:.1%} ({points[worst][0]:.2f}, {points[worst][1]:.2f})"
        print(
            f"{label:<40} {coverage.mean():>6.1%} {at:>26} {np.mean(coverage < 0.94):>6.1%} "
            f"{np.mean(coverage < 0.93):>6.1%}"
        )
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
