"""Drift intervals and Study 4's verdict on constructed data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from lora_study.core.grid import VariantSpec, fft_partner
from lora_study.stages.drift.summary import drift_outcome, summarise_drift
from lora_study.stats.cka import linear_cka
from lora_study.stats.drift import (
    Interval,
    debiased_cka_from_grams,
    debiased_cka_resampled,
    drift_resamples,
    example_draws,
    forgetting_per_seed,
    forgetting_per_text,
    forgetting_resamples,
    grams,
    percentile_interval,
    ratio_seed_interval,
    resample_counts,
    seed_interval,
)


def population_cka(weights: np.ndarray, noise: float) -> float:
    """Linear CKA of X ~ N(0, I) and Y = X W + noise E in the population:
    ||Cov(X, Y)||_F^2 / (||Cov(X)||_F ||Cov(Y)||_F)."""
    cov_y = weights.T @ weights + noise**2 * np.eye(weights.shape[1])
    return float(np.sum(weights**2) / np.sqrt(weights.shape[0] * np.sum(cov_y**2)))


def test_gram_route_equals_the_one_shot_estimator() -> None:
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(30, 7)) + 5.0, rng.normal(size=(30, 3))]
    ys = [xs[0] @ rng.normal(size=(7, 4)) + rng.normal(size=(30, 4)), rng.normal(size=(30, 5))]
    values = debiased_cka_from_grams(grams(xs), grams(ys))
    assert values == pytest.approx([linear_cka(x, y, debiased=True) for x, y in zip(xs, ys, strict=True)], rel=1e-10)
    assert debiased_cka_from_grams(grams(xs), grams(xs)) == pytest.approx([1.0, 1.0], abs=1e-12)


def cka_of_rows(kx: np.ndarray, ky: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The resample's debiased CKA by definition: the Grams indexed by the drawn examples, the
    diagonal and every pair of copies of one example zeroed, then HSIC_u (Song et al. 2012)."""
    kx, ky = kx[:, rows[:, None], rows[None, :]], ky[:, rows[:, None], rows[None, :]]
    distinct = rows[:, None] != rows[None, :]
    kx, ky = kx * distinct, ky * distinct
    n = len(rows)

    def hsic(k: np.ndarray, l: np.ndarray) -> np.ndarray:  # noqa: E741 (K and L as in the paper)
        k1, l1 = k.sum(axis=2), l.sum(axis=2)
        trace = np.einsum("aij,aij->a", k, l)
        return (
            trace
            + k1.sum(axis=1) * l1.sum(axis=1) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * np.einsum("ai,ai->a", k1, l1)
        )

    return hsic(kx, ky) / np.sqrt(hsic(kx, kx) * hsic(ky, ky))


def resampled(kx: np.ndarray, ky: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return debiased_cka_resampled(kx, ky, counts=resample_counts(rows[None], n=kx.shape[1]))[0]


def test_resamples_from_counts_equal_the_indexed_definition() -> None:
    """Each resample's CKA from the example counts equals the Grams indexed by the draw, with
    repeats (the products with the counts replace the copy of an n x n Gram per resample)."""
    rng = np.random.default_rng(3)
    xs = [rng.normal(size=(25, 6)), rng.normal(size=(25, 3)) + 2.0]
    ys = [xs[0] @ rng.normal(size=(6, 6)) + rng.normal(size=(25, 6)), rng.normal(size=(25, 4))]
    kx, ky = grams(xs), grams(ys)
    draws = example_draws(n=25, resamples=40, rng=rng)
    expected = np.stack([cka_of_rows(kx, ky, rows) for rows in draws])
    got = debiased_cka_resampled(kx, ky, counts=resample_counts(draws, n=25))
    assert got.shape == (40, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    base_tuned = drift_resamples(base=kx, tuned=[ky, kx], draws=draws)
    np.testing.assert_allclose(base_tuned, np.mean([1 - expected, np.zeros_like(expected)], axis=0), atol=1e-10)


def test_a_resample_with_every_example_once_equals_the_full_estimate_and_copies_do_not_pair() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(12, 4)), rng.normal(size=(12, 4))
    kx, ky = grams([x]), grams([y])
    permuted = rng.permutation(12)
    assert resampled(kx, ky, permuted) == pytest.approx(debiased_cka_from_grams(kx, ky), rel=1e-10)
    # An example drawn twice is not a pair of distinct examples: identical features for the
    # repeats must not raise the similarity of two unrelated representations towards 1.
    repeated = np.repeat(np.arange(6), 2)
    assert abs(resampled(kx, ky, repeated)[0]) < 0.7
    assert resampled(kx, ky, repeated) == pytest.approx(cka_of_rows(kx, ky, repeated), rel=1e-10)


def test_bootstrap_interval_covers_the_population_cka_at_about_its_level() -> None:
    """Seeded simulation: 150 samples of n=40 from a population whose CKA is known; the 95%
    interval must cover it in about 95% of them (measured: 98%, 147 of 150, at this setting)."""
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(5, 5)) / np.sqrt(5)
    truth = population_cka(weights, noise=1.0)
    covered, simulations = 0, 150
    for _ in range(simulations):
        x = rng.normal(size=(40, 5))
        y = x @ weights + rng.normal(size=(40, 5))
        kx, ky = grams([x]), grams([y])
        draws = example_draws(n=40, resamples=300, rng=rng)
        samples = debiased_cka_resampled(kx, ky, counts=resample_counts(draws, n=40))[:, 0]
        interval = percentile_interval(estimate=debiased_cka_from_grams(kx, ky)[0], samples=samples, confidence=0.95)
        covered += interval.low <= truth <= interval.high
    assert 0.90 <= covered / simulations <= 0.995


def test_seed_level_intervals_keep_three_seeds_from_passing_a_verdict() -> None:
    """Per-seed mean drift of LoRA 0.009, 0.012, 0.015 against FFT's 0.020: the ratio is 0.6,
    but with 3 seeds (t with 2 degrees of freedom, 97.5% for two simultaneous verdicts) the
    interval reaches past 0.8, so "20% less drift" is not shown."""
    low, high = ratio_seed_interval(
        numerator=np.array([0.009, 0.012, 0.015]), denominator=np.array([0.020]), confidence=0.975
    )
    factor = np.exp(6.2053 * 0.003 / np.sqrt(3) / 0.012)  # t(0.9875, 2) x relative se, on the log scale
    assert (low, high) == pytest.approx((0.6 / factor, 0.6 * factor), rel=1e-3) and high > 0.8
    assert seed_interval(values=np.array([0.5]), confidence=0.95) is None
    low, high = seed_interval(values=np.array([1.0, 2.0, 3.0]), confidence=0.95)
    assert (low, high) == pytest.approx((2 - 4.3027 / np.sqrt(3), 2 + 4.3027 / np.sqrt(3)), rel=1e-4)
    # The envelope: a narrow bootstrap cannot hide the seeds' spread.
    interval = percentile_interval(
        estimate=0.6, samples=np.linspace(0.55, 0.65, 101), confidence=0.95, seeds=(0.2, 1.0)
    )
    assert (interval.low, interval.high) == (0.2, 1.0)


def test_undefined_resamples_push_the_interval_up_instead_of_vanishing() -> None:
    samples = np.array([0.1, 0.2, 0.3, np.nan, np.inf] * 20)
    interval = percentile_interval(estimate=0.2, samples=samples, confidence=0.9)
    assert interval.high == np.inf and interval.low == 0.1


def test_forgetting_is_the_token_weighted_change_of_cross_entropy() -> None:
    base_nll, tokens = np.array([10.0, 30.0]), np.array([10.0, 10.0])  # 1 and 3 nats per token: mean 2
    tuned = [np.array([20.0, 30.0])]  # 2 and 3: mean 2.5
    assert forgetting_per_seed(base_nll=base_nll, tokens=tokens, tuned_nll=tuned) == pytest.approx([0.5])
    difference = forgetting_per_text(base_nll=base_nll, tuned_nll=tuned)
    samples = forgetting_resamples(difference=difference, tokens=tokens, draws=np.array([[0, 0], [1, 1], [0, 1]]))
    assert samples == pytest.approx([1.0, 0.0, 0.5])


LORA = VariantSpec(kind="lora", train_size=100, seed=1, learning_rate=1e-3, rank=8, alpha=16.0, targets="qv")
FFT = VariantSpec(kind="fft", train_size=100, seed=1, learning_rate=1e-5)


def summary(lora_amount: float, fft_amount: float, *, difference: dict | None = None, examples: int = 80) -> dict:
    """A two-layer summary (layer 0 untouched, as an embedding under q/v adapters) for a LoRA
    group and full fine-tuning whose drift is set by the amount of noise added."""
    rng = np.random.default_rng(0)
    base = [rng.normal(size=(examples, 8)), rng.normal(size=(examples, 8))]

    def variant(spec: VariantSpec, amount: float) -> tuple[dict, dict, list[np.ndarray]]:
        tuned = [base[0], base[1] + amount * rng.normal(size=base[1].shape)]
        texts = {"per_text_nll": [10.0, 12.0, 9.0], "per_text_tokens": [5, 6, 4]}
        return spec.to_dict(), {"forgetting": {"in_domain": texts, "general": texts}}, tuned

    comparisons = None
    if difference is not None:
        comparisons = {
            "run": {"metric": "rougeL"},
            "metrics": {
                "comparisons": [
                    {
                        "a": "lora-r8-qv-n100",
                        "b": "fft-n100",
                        "difference": difference,
                        "quality_gap": {"max_gap": 0.03, "holds": difference["high"] < 0.03},
                    }
                ]
            },
        }
    forgetting = {"per_text_nll": [10.0, 12.0, 9.0], "per_text_tokens": [5, 6, 4]}
    return summarise_drift(
        base_features=base,
        base_forgetting={"in_domain": forgetting, "general": forgetting},
        variants={LORA.name: variant(LORA, lora_amount), FFT.name: variant(FFT, fft_amount)},
        comparisons=comparisons,
        settings={
            "criterion": 0.2,
            "resamples": 400,
            "seed": 0,
            "confidence": 0.95,
            "include_embeddings": False,
            "max_quality_gap": 0.03,
        },
    )


def test_verdict_holds_only_when_drift_interval_and_quality_both_hold() -> None:
    close = {"mean": 0.01, "low": -0.01, "high": 0.02, "confidence": 0.95}
    far = {"mean": 0.058, "low": 0.02, "high": 0.10, "confidence": 0.95}
    (clear,) = summary(0.1, 1.0, difference=close)["metrics"]["verdicts"]
    assert clear["drift"] == "holds" and clear["quality"]["outcome"] == "holds" and clear["holds"]
    assert clear["ratio"]["high"] <= 0.8 and "criterion holds" in clear["text"]
    (worse_quality,) = summary(0.1, 1.0, difference=far)["metrics"]["verdicts"]
    assert worse_quality["drift"] == "holds" and not worse_quality["holds"]
    assert "criterion not supported" in worse_quality["text"]
    (more_drift,) = summary(1.0, 0.1, difference=close)["metrics"]["verdicts"]
    assert more_drift["drift"] == "does not hold" and not more_drift["holds"]
    (unmeasured,) = summary(0.1, 1.0)["metrics"]["verdicts"]
    assert unmeasured["quality"]["outcome"] == "not measured" and not unmeasured["holds"]


def test_a_ratio_interval_that_straddles_the_threshold_is_not_supported() -> None:
    assert (
        drift_outcome(ratio=Interval(estimate=0.7, low=0.6, high=0.9, confidence=0.95), threshold=0.8)
        == "not supported"
    )
    assert drift_outcome(ratio=Interval(estimate=0.7, low=0.6, high=0.8, confidence=0.95), threshold=0.8) == "holds"
    assert (
        drift_outcome(ratio=Interval(estimate=0.9, low=0.81, high=1.0, confidence=0.95), threshold=0.8)
        == "does not hold"
    )
    nan = float("nan")
    assert (
        drift_outcome(ratio=Interval(estimate=nan, low=nan, high=nan, confidence=0.95), threshold=0.8)
        == "not supported"
    )


def test_equal_drift_reads_as_a_ratio_near_one_and_layer_zero_stays_out_of_the_mean() -> None:
    result = summary(0.5, 0.5, difference={"mean": 0.0, "low": -0.01, "high": 0.01, "confidence": 0.95})
    (verdict,) = result["metrics"]["verdicts"]
    assert verdict["ratio"]["low"] < 1.0 < verdict["ratio"]["high"] and verdict["drift"] == "does not hold"
    groups = result["metrics"]["groups"]
    assert set(groups) == {"lora-r8-qv-n100", "fft-n100"}
    assert groups["lora-r8-qv-n100"]["per_layer"][0]["estimate"] == pytest.approx(0.0, abs=1e-12)  # untouched layer
    assert result["run"]["mean_over"] == "layers 1-1"
    assert groups["fft-n100"]["mean_drift"]["estimate"] == pytest.approx(groups["fft-n100"]["per_layer"][1]["estimate"])


def test_fft_partner_has_the_same_training_size_and_settings() -> None:
    fft_1000 = VariantSpec(kind="fft", train_size=1000, seed=1, learning_rate=1e-5)
    groups = {FFT.group: FFT, fft_1000.group: fft_1000}
    assert fft_partner(LORA.to_dict(), groups) == FFT.group
    qlora = VariantSpec(kind="qlora", train_size=1000, seed=2, learning_rate=1e-3, rank=4, alpha=8.0, targets="attn")
    assert fft_partner(qlora, groups) == fft_1000.group and qlora.method == "qlora-r4-attn-n1000"
    assert fft_partner(FFT, groups) is None and fft_partner(None, groups) is None
    # Full fine-tuning with other shared training settings (here: epochs) is no fair partner.
    other_epochs = VariantSpec(kind="lora", train_size=100, seed=1, learning_rate=1e-3, rank=8, training={"epochs": 3})
    assert fft_partner(other_epochs, groups) is None


def test_a_ratio_of_positive_drifts_keeps_a_positive_interval() -> None:
    """Two of three LoRA seeds barely moved and one did, against FFT: the symmetric delta-method
    interval of the ratio reached -1.53 (a negative drift ratio, impossible for drifts above 0);
    on the log scale it stays above 0 and still reaches past 0.8 (nothing shown)."""
    numerator, denominator = np.array([0.001, 0.02, 0.002]), np.array([0.020])
    low, high = ratio_seed_interval(numerator=numerator, denominator=denominator, confidence=0.975)
    ratio = numerator.mean() / denominator.mean()
    assert 0 < low < ratio < 0.8 < high
    # Where a drift is negative (debiased CKA above 1) the ratio has no floor: the symmetric interval.
    low, high = ratio_seed_interval(
        numerator=np.array([-0.001, 0.02, 0.002]), denominator=denominator, confidence=0.975
    )
    assert low < 0 and (low + high) / 2 == pytest.approx(0.021 / 3 / 0.02)
