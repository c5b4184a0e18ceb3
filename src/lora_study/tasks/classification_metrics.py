"""Accuracy, per-class and macro F1 for label tasks (e.g. GLUE MRPC), with seeded
bootstrap intervals for F1.

F1 is a ratio of counts over the whole set (2 TP / (2 TP + FP + FN)), not a mean of
per-example values, so the studentised intervals of `lora_study.stats.inference` (means of
per-example scores) do not apply to it. Its interval here is the percentile bootstrap over
examples: each resample recomputes F1 from resampled examples, and the interval is the
quantiles of those F1s. It is not studentised because F1 has no per-example decomposition
to give a standard error per resample; expect it to be somewhat narrow at small n.

As in `lora_study.stats.inference`, every interval takes an explicit seed and draws from
`numpy.random.default_rng(seed)`, so the same inputs give the same numbers everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PERCENTILE = "percentile bootstrap over examples"
# Resampled indices held at once (resamples x examples): memory stays bounded (tens of MB) at large n.
_CHUNK_CELLS = 250_000


def confusion_matrix(*, gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> list[list[int]]:
    """Counts with rows = gold label and columns = predicted label, both in the order of
    `labels`. A label outside `labels` raises: silently dropping it would change every rate."""
    _check_lengths(gold, predicted)
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels repeat: {list(labels)}")
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, predicted, strict=True):
        for label in (g, p):
            if label not in index:
                raise ValueError(f"label {label!r} is not in labels {list(labels)}")
        matrix[index[g]][index[p]] += 1
    return matrix


def accuracy(*, gold: Sequence[str], predicted: Sequence[str]) -> float:
    """Share of examples whose predicted label equals the gold label."""
    _check_lengths(gold, predicted)
    if not gold:
        raise ValueError("accuracy of no examples is undefined")
    return sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)


def f1_of(*, gold: Sequence[str], predicted: Sequence[str], positive: str) -> float | None:
    """F1 of the class `positive`: the harmonic mean of its precision and recall, i.e.
    2 TP / (2 TP + FP + FN).

    None when there is no positive gold and no positive prediction: nothing to be right or
    wrong about. When precision is undefined (no positive predictions) but there are
    positive golds, F1 is 0.0 (as is the formula), the result of sklearn's default
    zero_division=0; likewise 0.0 when recall is undefined but there are positive predictions.
    """
    _check_lengths(gold, predicted)
    tp = sum(g == positive and p == positive for g, p in zip(gold, predicted, strict=True))
    fp = sum(g != positive and p == positive for g, p in zip(gold, predicted, strict=True))
    fn = sum(g == positive and p != positive for g, p in zip(gold, predicted, strict=True))
    return _f1(tp, fp, fn)


def macro_f1(*, gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> float:
    """Unweighted mean over `labels` of each label's F1, for multi-class sets.

    A label whose F1 is undefined (never gold, never predicted) counts as 0.0, as with
    sklearn's default zero_division for labels passed explicitly, so list only labels the
    task can produce: an impossible label would pull the mean down.
    """
    if not labels:
        raise ValueError("macro F1 needs at least one label")
    matrix = np.asarray(confusion_matrix(gold=gold, predicted=predicted, labels=labels), dtype=int)
    scores = []
    for i in range(len(labels)):
        tp = int(matrix[i, i])
        f1 = _f1(tp, int(matrix[:, i].sum()) - tp, int(matrix[i, :].sum()) - tp)
        scores.append(0.0 if f1 is None else f1)
    return float(np.mean(scores))


def f1_interval(
    *, gold: Sequence[str], predicted: Sequence[str], positive: str, resamples: int, seed: int, confidence: float
) -> dict[str, object]:
    """Percentile bootstrap interval of the positive class's F1 (module docstring: why).

    Resamples in which F1 is undefined (no positive gold or prediction drawn) are dropped
    and counted; the interval is then conditional on a defined F1, which matters only when
    positives are rare. "mean" holds the point estimate on all examples (the field name of
    the other intervals), not the mean of the resamples.
    """
    _check_lengths(gold, predicted)
    counts = _outcomes(gold, predicted, positive)
    point = _f1(*(int(c.sum()) for c in counts))
    values = _resampled_f1(counts, resamples=resamples, rng=np.random.default_rng(seed))
    return _percentile(point, values, resamples=resamples, confidence=confidence)


def paired_f1_difference(
    *,
    gold: Sequence[str],
    predicted_a: Sequence[str],
    predicted_b: Sequence[str],
    positive: str,
    resamples: int,
    seed: int,
    confidence: float,
) -> dict[str, object]:
    """Percentile bootstrap interval of F1(b) - F1(a) on the same examples.

    Paired: each resample draws one set of example indices for both models, so what the
    two have in common (the hard and easy examples) cancels out of the difference. A
    resample where either F1 is undefined is dropped and counted.
    """
    _check_lengths(gold, predicted_a)
    _check_lengths(gold, predicted_b)
    counts_a, counts_b = _outcomes(gold, predicted_a, positive), _outcomes(gold, predicted_b, positive)
    f1_a, f1_b = (_f1(*(int(c.sum()) for c in counts)) for counts in (counts_a, counts_b))
    point = None if f1_a is None or f1_b is None else f1_b - f1_a
    values = _resampled_f1(counts_a + counts_b, resamples=resamples, rng=np.random.default_rng(seed))
    # One resample's six counts: columns 0-2 are a's (tp, fp, fn), 3-5 are b's.
    return _percentile(point, values[:, 1] - values[:, 0], resamples=resamples, confidence=confidence)


def _check_lengths(gold: Sequence[str], predicted: Sequence[str]) -> None:
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")


def _f1(tp: int, fp: int, fn: int) -> float | None:
    denominator = 2 * tp + fp + fn
    return None if denominator == 0 else 2 * tp / denominator


def _outcomes(gold: Sequence[str], predicted: Sequence[str], positive: str) -> tuple[np.ndarray, ...]:
    """Per-example 0/1 indicators of (TP, FP, FN) for the positive class."""
    g = np.array([label == positive for label in gold], dtype=bool)
    p = np.array([label == positive for label in predicted], dtype=bool)
    return tuple(x.astype(np.int64) for x in (g & p, ~g & p, g & ~p))


def _resampled_f1(indicators: tuple[np.ndarray, ...], *, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """F1 on `resamples` bootstrap resamples of the examples, NaN where undefined.

    `indicators` holds (tp, fp, fn) per example for one or more models (3 arrays each); the
    same indices serve every model. Returns resamples x models.
    """
    n = indicators[0].size
    if n == 0:
        raise ValueError("no examples to bootstrap")
    if resamples < 1:
        raise ValueError(f"resamples must be positive, got {resamples}")
    stacked = np.stack(indicators)  # (3 * models) x examples
    totals = np.empty((resamples, stacked.shape[0]), dtype=np.int64)
    chunk = max(1, _CHUNK_CELLS // n)
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        indices = rng.integers(0, n, size=(rows, n))
        totals[start : start + rows] = stacked[:, indices].sum(axis=2).T
    tp, fp, fn = totals[:, 0::3], totals[:, 1::3], totals[:, 2::3]
    denominator = 2 * tp + fp + fn
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, 2 * tp / denominator, np.nan)


def _percentile(point: float | None, values: np.ndarray, *, resamples: int, confidence: float) -> dict[str, object]:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    values = np.asarray(values, dtype=float).reshape(resamples)
    kept = values[np.isfinite(values)]
    low = high = None
    if kept.size:
        alpha = 1 - confidence
        low, high = (float(q) for q in np.quantile(kept, [alpha / 2, 1 - alpha / 2]))
    return {
        "mean": point,
        "low": low,
        "high": high,
        "confidence": confidence,
        "method": PERCENTILE,
        "resamples_used": int(kept.size),
        "resamples_dropped": int(resamples - kept.size),
    }
