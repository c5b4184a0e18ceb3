"""Intervals for drift and forgetting: seeded bootstraps over examples (and seeds).

Drift of a layer is 1 - debiased CKA between base and tuned features of the same
examples. CKA is not a mean over examples, so the bootstrap recomputes it on each
resample. Each layer's Gram matrix is built once; a resample then only indexes it
(O(n^2) per layer and resample, no feature products). Pairs of copies of one example
are left out of the resampled Gram, as the diagonal is in the unbiased HSIC estimator:
a copy paired with itself is not a pair of distinct examples and would read as perfect
similarity.

With several seeds per variant, each resample also draws the seeds (with replacement),
so seed-to-seed variation widens the interval as in the ROUGE comparisons.

No torch here: the summary job and the report import this.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lora_study.io import atomic_write_bytes


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    confidence: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def grams(features: Sequence[np.ndarray]) -> np.ndarray:
    """(layers, n, n) linear Gram matrices of per-layer (n, d) features, float64.

    A coordinate-wise median is subtracted first (CKA is translation invariant): hidden
    states carry a large common offset, and subtracting it keeps the sums small."""
    out = []
    for x in features:
        x = np.asarray(x, dtype=np.float64)
        x = x - np.median(x, axis=0)
        out.append(x @ x.T)
    return np.stack(out)


def debiased_cka_from_grams(kx: np.ndarray, ky: np.ndarray, *, rows: np.ndarray | None = None) -> np.ndarray:
    """Debiased linear CKA per layer from (layers, n, n) Grams, on the examples `rows`
    (a resample, with repeats; None = all once). nan where a layer has no variation."""
    if rows is not None:
        kx, ky = kx[:, rows[:, None], rows[None, :]], ky[:, rows[:, None], rows[None, :]]
        distinct = rows[:, None] != rows[None, :]
    else:
        distinct = ~np.eye(kx.shape[1], dtype=bool)
    kx, ky = kx * distinct, ky * distinct  # zero diagonal and copy pairs
    cross, self_x, self_y = _hsic_u(kx, ky), _hsic_u(kx, kx), _hsic_u(ky, ky)
    with np.errstate(invalid="ignore", divide="ignore"):
        valid = (self_x > 0) & (self_y > 0)
        return np.where(valid, cross / np.sqrt(np.where(valid, self_x * self_y, 1.0)), np.nan)


def _hsic_u(k: np.ndarray, l: np.ndarray) -> np.ndarray:
    """n(n-3) HSIC_u per layer (Song et al. 2012) for Grams with zeroed diagonals."""
    n = k.shape[1]
    k1, l1 = k.sum(axis=2), l.sum(axis=2)
    trace = np.einsum("aij,aij->a", k, l)
    return trace + k1.sum(axis=1) * l1.sum(axis=1) / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * np.einsum("ai,ai->a", k1, l1)


def drift_resamples(
    *,
    base: np.ndarray,
    tuned: Sequence[np.ndarray],
    draws: np.ndarray,
    seed_draws: np.ndarray,
) -> np.ndarray:
    """Per-layer drift (1 - CKA) on each resample: (resamples, layers).

    `base` is the base model's (layers, n, n) Grams, `tuned` one per seed of the variant;
    `draws` (resamples, n) example indices, `seed_draws` (resamples, seeds) seed indices.
    A resample's drift is the mean over its drawn seeds."""
    out = np.empty((draws.shape[0], base.shape[0]))
    for index, (rows, seeds) in enumerate(zip(draws, seed_draws)):
        out[index] = np.mean([1.0 - debiased_cka_from_grams(base, tuned[s], rows=rows) for s in seeds], axis=0)
    return out


def point_drift(*, base: np.ndarray, tuned: Sequence[np.ndarray]) -> np.ndarray:
    """Per-layer drift on all examples, averaged over seeds: (layers,)."""
    return np.mean([1.0 - debiased_cka_from_grams(base, grams_, rows=None) for grams_ in tuned], axis=0)


def example_draws(*, n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, n, size=(resamples, n))


def seed_draws(*, seeds: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    if seeds == 1:
        return np.zeros((resamples, 1), dtype=np.int64)
    return rng.integers(0, seeds, size=(resamples, seeds))


def percentile_interval(*, estimate: float, samples: np.ndarray, confidence: float) -> Interval:
    """Percentile interval of a bootstrap distribution around the full-sample estimate."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return Interval(estimate=estimate, low=float("nan"), high=float("nan"), confidence=confidence)
    low, high = np.quantile(finite, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(estimate=float(estimate), low=float(low), high=float(high), confidence=confidence)


def forgetting_resamples(
    *, base_nll: np.ndarray, base_tokens: np.ndarray, tuned_nll: Sequence[np.ndarray], tuned_tokens: np.ndarray,
    draws: np.ndarray, seed_draws: np.ndarray,
) -> np.ndarray:
    """Change of token-weighted mean cross-entropy (tuned minus base, nats per token) on each
    resample of texts (paired: the same texts for both), averaged over the drawn seeds.
    Per text: summed NLL and token count."""
    base = base_nll[draws].sum(axis=1) / base_tokens[draws].sum(axis=1)
    tokens = tuned_tokens[draws].sum(axis=1)
    per_seed = np.stack([nll[draws].sum(axis=1) / tokens for nll in tuned_nll], axis=1)  # (resamples, seeds)
    tuned = np.take_along_axis(per_seed, seed_draws, axis=1).mean(axis=1)
    return tuned - base


def forgetting_point(*, base_nll: np.ndarray, base_tokens: np.ndarray, tuned_nll: Sequence[np.ndarray], tuned_tokens: np.ndarray) -> float:
    base = base_nll.sum() / base_tokens.sum()
    return float(np.mean([nll.sum() / tuned_tokens.sum() for nll in tuned_nll]) - base)


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
