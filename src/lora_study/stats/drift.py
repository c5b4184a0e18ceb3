"""Intervals for drift and forgetting: seeded bootstraps over examples (and seeds).

Drift of a layer is 1 - debiased CKA between base and tuned features of the same
examples. CKA is not a mean over examples, so the bootstrap recomputes it on each
resample. Each layer's Gram matrix is built once; a resample then only indexes it
(O(n^2) per layer and resample, no feature products). Pairs of copies of one example
are left out of the resampled Gram, as the diagonal is in the unbiased HSIC estimator:
a copy paired with itself is not a pair of distinct examples and would read as perfect
similarity.

With several seeds per variant, the bootstrap over examples resamples the seed-averaged
quantity, and a t interval on the per-seed values (k - 1 degrees of freedom; Welch and the
delta method for a ratio of two groups) gives the seed level; the reported interval is the
envelope of the two, as in the ROUGE comparisons. Resampling 3 seeds with replacement
instead would treat them as a population and be too narrow (docs/STATISTICS.md).

No torch here: the summary job and the report import this.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lora_study.core.io import atomic_write_bytes
from lora_study.stats.cka import hsic_u_terms
from lora_study.stats.distributions import t_quantile

# Forgetting texts: in-domain held-out rows of the study's dataset, and general text from another domain.
TEXT_SETS = ("in_domain", "general")


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    confidence: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def grams(features: Sequence[np.ndarray]) -> np.ndarray:
    """(layers, n, n) linear Gram matrices of per-layer (n, d) features, float64, after
    subtracting each feature's mean over all n examples.

    On all examples the debiased estimator does not depend on the subtracted offset; on a
    resample, where pairs of copies are left out, it does slightly, so the offset is fixed
    to the full sample's mean (the centred Gram of the HSIC definition), once for all resamples."""
    out = []
    for x in features:
        x = np.asarray(x, dtype=np.float64)
        x = x - x.mean(axis=0)
        out.append(x @ x.T)
    return np.stack(out)


def debiased_cka_from_grams(kx: np.ndarray, ky: np.ndarray) -> np.ndarray:
    """Debiased linear CKA per layer from (layers, n, n) Grams, on all n examples once. nan
    where a layer has no variation."""
    ones = np.ones((1, kx.shape[1]))
    return debiased_cka_resampled(kx, ky, counts=ones)[0]


def resample_counts(draws: np.ndarray, *, n: int) -> np.ndarray:
    """(resamples, n) float64: how often each example is drawn in each resample of `draws`."""
    counts = np.zeros((draws.shape[0], n))
    np.add.at(counts, (np.arange(draws.shape[0])[:, None], draws), 1.0)
    return counts


def debiased_cka_resampled(kx: np.ndarray, ky: np.ndarray, *, counts: np.ndarray) -> np.ndarray:
    """(resamples, layers) debiased linear CKA of each resample whose example multiplicities are
    the rows of `counts`, from the (layers, n, n) Grams of the examples once.

    The resample's Gram, with its diagonal and the pairs of copies of one example zeroed as the
    estimator needs, is K0 (K with a zeroed diagonal) indexed by the drawn examples, so every sum
    the estimator takes over it is a product with the counts c: the trace term is c'(K0 o L0)c,
    the row sums are K0 c weighted by c. That is a few matrix products per layer instead of
    copying an n x n Gram per resample (the same values to rounding: tests/test_drift_stats.py)."""
    resample_size = counts.sum(axis=1)
    if not np.all(resample_size == resample_size[0]):
        raise ValueError("every resample must hold the same number of examples")
    kx0, ky0 = _zero_diagonal(kx), _zero_diagonal(ky)
    columns = np.ascontiguousarray(counts.T)  # (n, resamples)
    kc, lc = _times(kx0, columns), _times(ky0, columns)  # (layers, n, resamples): K0 c per resample
    n = float(resample_size[0])
    cross = _hsic_u_counts(kx0, ky0, kc, lc, columns=columns, n=n)
    self_x = _hsic_u_counts(kx0, kx0, kc, kc, columns=columns, n=n)
    self_y = _hsic_u_counts(ky0, ky0, lc, lc, columns=columns, n=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        valid = (self_x > 0) & (self_y > 0)
        cka = np.where(valid, cross / np.sqrt(np.where(valid, self_x * self_y, 1.0)), np.nan)
    return cka.T


def _zero_diagonal(k: np.ndarray) -> np.ndarray:
    out = np.array(k, dtype=np.float64, copy=True)
    index = np.arange(k.shape[1])
    out[:, index, index] = 0.0
    return out


def _times(k: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """(layers, n, resamples) = each layer's (n, n) matrix times the (n, resamples) counts, as
    one 2-D product (a stack of small products runs several times slower)."""
    layers, n, _ = k.shape
    return (k.reshape(layers * n, n) @ columns).reshape(layers, n, columns.shape[1])


def _hsic_u_counts(
    k0: np.ndarray, l0: np.ndarray, kc: np.ndarray, lc: np.ndarray, *, columns: np.ndarray, n: float
) -> np.ndarray:
    """(layers, resamples) n(n-3) HSIC_u (Song et al. 2012) of each resample, from zero-diagonal
    Grams, their products with the counts (kc = K0 c, lc = L0 c; `columns`: the counts, one
    resample per column) and the resample size n."""
    c = columns[None]  # (1, n, resamples)
    trace = np.sum(_times(k0 * l0, columns) * c, axis=1)  # c'(K0 o L0)c
    k_total, l_total = np.sum(kc * c, axis=1), np.sum(lc * c, axis=1)  # c'K0c, c'L0c
    row_products = np.sum(kc * lc * c, axis=1)  # sum over drawn rows of (row sum of K) (row sum of L)
    return hsic_u_terms(n, trace=trace, k_sum=k_total, l_sum=l_total, kl_sum=row_products)


def drift_resamples(*, base: np.ndarray, tuned: Sequence[np.ndarray], draws: np.ndarray) -> np.ndarray:
    """Per-layer drift (1 - CKA) on each resample of examples, averaged over the variant's
    seeds: (resamples, layers). `base` and each of `tuned` (one per seed) are (layers, n, n)
    Grams; `draws` (resamples, n) example indices, the same for every seed (paired)."""
    counts = resample_counts(draws, n=base.shape[1])
    return np.mean([1.0 - debiased_cka_resampled(base, grams_, counts=counts) for grams_ in tuned], axis=0)


def per_seed_drift(*, base: np.ndarray, tuned: Sequence[np.ndarray]) -> np.ndarray:
    """Per-layer drift on all examples for each seed: (seeds, layers)."""
    return np.stack([1.0 - debiased_cka_from_grams(base, grams_) for grams_ in tuned])


def example_draws(*, n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, n, size=(resamples, n))


def seed_interval(*, values: np.ndarray, confidence: float) -> tuple[float, float] | None:
    """t interval of the mean of per-seed values (k - 1 degrees of freedom); None with one seed."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return None
    half = t_quantile(1 - (1 - confidence) / 2, df=values.size - 1) * values.std(ddof=1) / np.sqrt(values.size)
    return float(values.mean() - half), float(values.mean() + half)


def ratio_seed_interval(
    *, numerator: np.ndarray, denominator: np.ndarray, confidence: float
) -> tuple[float, float] | None:
    """Interval of mean(numerator) / mean(denominator) over independent seeds of two groups:
    the delta method's standard error with Welch-Satterthwaite degrees of freedom, on the log
    scale where every value is positive (`log_scale_bounds`); None when neither group has
    several seeds (seed variation not measured)."""
    numerator, denominator = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    parts = []
    ratio = float(np.mean(numerator) / np.mean(denominator))
    for values in (numerator, denominator):
        if values.size > 1:
            # Relative variance of the group's mean (the variance of its log), and its degrees of freedom.
            parts.append((values.var(ddof=1) / values.size / values.mean() ** 2, values.size - 1))
    if not parts:
        return None
    relative = sum(v for v, _ in parts)
    df = relative**2 / sum(v**2 / k for v, k in parts) if relative > 0 else float(sum(k for _, k in parts))
    quantile = t_quantile(1 - (1 - confidence) / 2, df=df)
    positive = bool(np.all(numerator > 0) and np.all(denominator > 0))
    return log_scale_bounds(ratio=ratio, se=abs(ratio) * float(np.sqrt(relative)), quantile=quantile, positive=positive)


def log_scale_bounds(*, ratio: float, se: float, quantile: float, positive: bool) -> tuple[float, float]:
    """The t interval of a ratio with standard error `se`, taken on the log scale:
    ratio x exp(-+ quantile x se / ratio) (the delta method: log(ratio) has standard error
    se / ratio). A ratio of means of positive values (latencies, drifts) is positive, and so is
    this interval; the symmetric one, ratio -+ quantile x se, reached below 0 with a few noisy
    passes (an overhead below -100%, a negative latency). Where some value is not positive
    (`positive` False) the ratio's range has no floor and the log is undefined: the symmetric one."""
    if positive and ratio > 0:
        factor = float(np.exp(quantile * se / ratio))
        return ratio / factor, ratio * factor
    return ratio - quantile * se, ratio + quantile * se


def percentile_interval(
    *, estimate: float, samples: np.ndarray, confidence: float, seeds: tuple[float, float] | None = None
) -> Interval:
    """Percentile interval of a bootstrap distribution around the full-sample estimate,
    widened to the seed-level interval `seeds` where that is wider (the envelope).

    A resample whose value is undefined (nan: a layer without variation, or a ratio over a
    zero drift) counts as +inf, so it can only move the interval up, never hide in a gap:
    an interval then ends at inf and no verdict can rest on it."""
    samples = np.where(np.isnan(samples), np.inf, samples)
    low, high = np.quantile(samples, [(1 - confidence) / 2, (1 + confidence) / 2], method="inverted_cdf")
    if seeds is not None:
        low, high = min(low, seeds[0]), max(high, seeds[1])
    return Interval(estimate=float(estimate), low=float(low), high=float(high), confidence=confidence)


def forgetting_per_text(*, base_nll: np.ndarray, tuned_nll: Sequence[np.ndarray]) -> np.ndarray:
    """Tuned minus base summed NLL per text, averaged over seeds: the paired difference the
    token-weighted change is a ratio of (divide its sum by the tokens' sum)."""
    return np.mean(tuned_nll, axis=0) - base_nll


def forgetting_resamples(*, difference: np.ndarray, tokens: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Token-weighted change of cross-entropy (nats per token) on each resample of texts."""
    return difference[draws].sum(axis=1) / tokens[draws].sum(axis=1)


def forgetting_per_seed(*, base_nll: np.ndarray, tokens: np.ndarray, tuned_nll: Sequence[np.ndarray]) -> np.ndarray:
    """Token-weighted change of cross-entropy on all texts for each seed."""
    return np.array([(nll.sum() - base_nll.sum()) / tokens.sum() for nll in tuned_nll])


def write_features(path: str | Path, features: Sequence[np.ndarray]) -> None:
    """Per-layer (prompts, d) features as one (layers, prompts, d) float32 array: the models
    compute in float32 (or less), so float32 keeps what they produced at half the size."""
    write_npz(path, {"features": np.stack([np.asarray(f, dtype=np.float32) for f in features])})


def read_features(path: str | Path) -> list[np.ndarray]:
    with np.load(path) as data:
        return [layer.astype(np.float64) for layer in data["features"]]


def write_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Arrays as one .npz file, written atomically like every result file."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
