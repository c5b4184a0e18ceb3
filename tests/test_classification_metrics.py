"""Label-task metrics on hand-built tables, the seeded percentile bootstrap of F1, and
McNemar's exact test on known binomial tails."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lora_study.stats.inference import mcnemar_exact
from lora_study.tasks.classification_metrics import (
    PERCENTILE,
    accuracy,
    confusion_matrix,
    f1_interval,
    f1_of,
    macro_f1,
    paired_f1_difference,
)


def table(tp: int, fp: int, fn: int, tn: int) -> tuple[list[str], list[str]]:
    """Gold and predicted labels with the given 2x2 counts for the class "yes"."""
    gold = ["yes"] * tp + ["no"] * fp + ["yes"] * fn + ["no"] * tn
    predicted = ["yes"] * tp + ["yes"] * fp + ["no"] * fn + ["no"] * tn
    return gold, predicted


def test_known_two_by_two_table() -> None:
    gold, predicted = table(tp=5, fp=2, fn=3, tn=10)
    # Accuracy: (TP + TN) / n = (5 + 10) / 20.
    assert accuracy(gold=gold, predicted=predicted) == pytest.approx(15 / 20)
    # Precision 5/7, recall 5/8: F1 = 2 (5/7)(5/8) / (5/7 + 5/8) = 2 TP / (2 TP + FP + FN) = 10/15.
    assert f1_of(gold=gold, predicted=predicted, positive="yes") == pytest.approx(10 / 15)
    # With "no" as the positive class: TP 10, FP 3, FN 2: F1 = 20 / (20 + 3 + 2) = 0.8.
    assert f1_of(gold=gold, predicted=predicted, positive="no") == pytest.approx(20 / 25)


def test_confusion_matrix_rows_are_gold_columns_predicted() -> None:
    gold, predicted = table(tp=5, fp=2, fn=3, tn=10)
    # Row "yes" (gold): 5 predicted yes (TP), 3 predicted no (FN); row "no": 2 yes (FP), 10 no.
    assert confusion_matrix(gold=gold, predicted=predicted, labels=["yes", "no"]) == [[5, 3], [2, 10]]
    assert confusion_matrix(gold=gold, predicted=predicted, labels=["no", "yes"]) == [[10, 2], [3, 5]]


def test_unknown_label_and_length_mismatch_raise() -> None:
    with pytest.raises(ValueError, match="maybe"):
        confusion_matrix(gold=["yes", "no"], predicted=["yes", "maybe"], labels=["yes", "no"])
    with pytest.raises(ValueError, match="maybe"):
        confusion_matrix(gold=["maybe", "no"], predicted=["yes", "no"], labels=["yes", "no"])
    with pytest.raises(ValueError, match="maybe"):
        macro_f1(gold=["yes", "no"], predicted=["yes", "maybe"], labels=["yes", "no"])
    with pytest.raises(ValueError):
        accuracy(gold=["yes"], predicted=["yes", "no"])
    with pytest.raises(ValueError):
        f1_of(gold=["yes"], predicted=["yes", "no"], positive="yes")


def test_f1_undefined_and_zero_conventions() -> None:
    # No positive gold and no positive prediction: nothing to score.
    assert f1_of(gold=["no", "no"], predicted=["no", "no"], positive="yes") is None
    # Positives in gold but none predicted (precision undefined): 0.0, as sklearn's zero_division=0.
    assert f1_of(gold=["yes", "no"], predicted=["no", "no"], positive="yes") == 0.0
    # Positives predicted but none in gold (recall undefined): 0.0.
    assert f1_of(gold=["no", "no"], predicted=["yes", "no"], positive="yes") == 0.0


def test_macro_f1_three_classes_by_hand() -> None:
    gold = ["a", "a", "a", "b", "b", "c"]
    predicted = ["a", "a", "b", "b", "c", "c"]
    # a: TP 2, FP 0, FN 1 -> 4/5.  b: TP 1, FP 1 (3rd), FN 1 (5th) -> 2/4.  c: TP 1, FP 1 (5th), FN 0 -> 2/3.
    expected = (4 / 5 + 2 / 4 + 2 / 3) / 3
    assert macro_f1(gold=gold, predicted=predicted, labels=["a", "b", "c"]) == pytest.approx(expected)
    assert accuracy(gold=gold, predicted=predicted) == pytest.approx(4 / 6)
    # A listed label that never occurs has undefined F1, counted as 0.0.
    assert macro_f1(gold=gold, predicted=predicted, labels=["a", "b", "c", "d"]) == pytest.approx(
        (4 / 5 + 2 / 4 + 2 / 3 + 0.0) / 4
    )


def interval(gold: list[str], predicted: list[str], *, seed: int = 0, resamples: int = 2000) -> dict[str, object]:
    return f1_interval(gold=gold, predicted=predicted, positive="yes", resamples=resamples, seed=seed, confidence=0.95)


def test_f1_interval_is_seeded_and_contains_the_estimate() -> None:
    gold, predicted = table(tp=5, fp=2, fn=3, tn=10)
    first, again, other = interval(gold, predicted), interval(gold, predicted), interval(gold, predicted, seed=1)
    assert first == again
    assert (first["low"], first["high"]) != (other["low"], other["high"])
    assert first["mean"] == pytest.approx(10 / 15)
    assert first["low"] < first["mean"] < first["high"]
    assert first["method"] == PERCENTILE and first["confidence"] == 0.95
    assert first["resamples_used"] + first["resamples_dropped"] == 2000


def test_f1_interval_shrinks_with_more_examples() -> None:
    gold, predicted = table(tp=5, fp=2, fn=3, tn=10)
    small = interval(gold, predicted)
    large = interval(gold * 10, predicted * 10)
    assert large["mean"] == pytest.approx(small["mean"])  # the same table, ten times over
    assert large["low"] < large["mean"] < large["high"]
    # Standard error as 1/sqrt(n): ten times the examples, about a third of the width.
    ratio = (large["high"] - large["low"]) / (small["high"] - small["low"])
    assert 0.2 < ratio < 0.5


def test_f1_interval_recomputes_f1_on_resampled_examples() -> None:
    """The vectorised counts equal `f1_of` on each resample, drawn as the function draws them."""
    rng = np.random.default_rng(3)
    gold = list(rng.choice(["yes", "no"], size=20))
    predicted = list(rng.choice(["yes", "no"], size=20))
    result = interval(gold, predicted, seed=7, resamples=300)
    indices = np.random.default_rng(7).integers(0, 20, size=(300, 20))
    values = [
        f1_of(gold=[gold[i] for i in row], predicted=[predicted[i] for i in row], positive="yes") for row in indices
    ]
    kept = [v for v in values if v is not None]
    assert result["resamples_used"] == len(kept)
    assert [result["low"], result["high"]] == pytest.approx(list(np.quantile(kept, [0.025, 0.975])))


def test_f1_interval_drops_undefined_resamples() -> None:
    # One true positive among ten examples, the rest true negatives. A resample misses it with
    # probability 0.9^10 = 0.349 and then has no positive at all: F1 undefined, dropped.
    # Every kept resample has only TPs among its positives: F1 = 1 exactly.
    gold, predicted = table(tp=1, fp=0, fn=0, tn=9)
    result = interval(gold, predicted, resamples=4000)
    dropped = result["resamples_dropped"]
    assert 0.31 < dropped / 4000 < 0.39  # binomial sd ~ 0.0075
    assert result["resamples_used"] == 4000 - dropped
    assert result["mean"] == result["low"] == result["high"] == 1.0
    # Nothing positive anywhere: no estimate and no interval, not a crash.
    empty = interval(["no"] * 5, ["no"] * 5, resamples=50)
    assert empty["mean"] is None and empty["low"] is None and empty["resamples_used"] == 0


def paired(gold: list[str], a: list[str], b: list[str], *, seed: int = 0) -> dict[str, object]:
    return paired_f1_difference(
        gold=gold, predicted_a=a, predicted_b=b, positive="yes", resamples=2000, seed=seed, confidence=0.95
    )


def test_paired_difference_of_a_model_with_itself_is_zero() -> None:
    gold, predicted = table(tp=5, fp=2, fn=3, tn=10)
    result = paired(gold, predicted, predicted)
    assert result["mean"] == 0.0 and result["low"] == 0.0 and result["high"] == 0.0
    assert result["method"] == PERCENTILE


def test_paired_difference_sign_and_antisymmetry() -> None:
    gold, weak = table(tp=5, fp=2, fn=3, tn=10)
    strong = list(gold)  # perfect predictions, F1 1
    better = paired(gold * 3, weak * 3, strong * 3)
    # F1(b) - F1(a) = 1 - 10/15 = 1/3, and the same indices for both keep the interval above 0.
    assert better["mean"] == pytest.approx(1 / 3)
    assert 0 < better["low"] < better["mean"] < better["high"]
    # Swapping the models, with the same seed (the same resamples), negates everything.
    worse = paired(gold * 3, strong * 3, weak * 3)
    assert worse["mean"] == pytest.approx(-better["mean"])
    assert (worse["low"], worse["high"]) == pytest.approx((-better["high"], -better["low"]))
    assert worse["resamples_used"] == better["resamples_used"]


def test_mcnemar_known_tables() -> None:
    def run(a_only: int, b_only: int, both: int = 3, neither: int = 2) -> dict[str, object]:
        correct_a = [True] * a_only + [False] * b_only + [True] * both + [False] * neither
        correct_b = [False] * a_only + [True] * b_only + [True] * both + [False] * neither
        return mcnemar_exact(correct_a=correct_a, correct_b=correct_b)

    # No discordant pairs: no evidence either way.
    assert run(0, 0)["p_value"] == 1.0
    # n = 6, P(X <= 1) = (C(6,0) + C(6,1)) / 2^6 = 7/64; p = 14/64 = 0.21875 exactly.
    result = run(1, 5)
    assert result["p_value"] == 14 / 64 == 0.21875
    assert (result["a_only_correct"], result["b_only_correct"], result["discordant"]) == (1, 5, 6)
    assert result["test"] == "McNemar exact (two-sided binomial on discordant pairs)"
    # n = 10, P(X <= 0) = 1/1024; p = 2/1024.
    assert run(0, 10)["p_value"] == 2 / 1024
    # Symmetric in a and b; concordant pairs change nothing.
    assert run(5, 1)["p_value"] == run(1, 5)["p_value"] == run(1, 5, both=100, neither=50)["p_value"]


def test_mcnemar_large_counts_without_underflow() -> None:
    def run(a_only: int, b_only: int) -> float:
        return mcnemar_exact(
            correct_a=[True] * a_only + [False] * b_only, correct_b=[False] * a_only + [True] * b_only
        )["p_value"]

    # 1000/1000: P(X <= 1000) > 1/2, so 2 P > 1, capped at 1.
    assert run(1000, 1000) == 1.0
    # 900/1100: a cross-check of the exact tail in log space (lgamma), term by term.
    n = 2000
    log_terms = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) - n * math.log(2) for k in range(901)]
    top = max(log_terms)
    expected = 2 * math.exp(top) * sum(math.exp(t - top) for t in log_terms)
    p = run(900, 1100)
    assert 0 < p < 1e-5
    assert p == pytest.approx(expected, rel=1e-9)


def test_mcnemar_length_mismatch_raises() -> None:
    with pytest.raises(ValueError):
        mcnemar_exact(correct_a=[True, False], correct_b=[True])
