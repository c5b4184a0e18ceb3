"""Linear CKA: known values, invariances, the debiasing, and three routes that must agree."""

from __future__ import annotations

import numpy as np
import pytest

from lora_study.stats.cka import LinearCKAStream, UndefinedCKA, cka_matrix, cosine_similarity_mean, linear_cka

BOTH = pytest.mark.parametrize("debiased", [False, True], ids=["biased", "debiased"])


def features(seed: int, n: int = 40, d: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Two related representations: y is a noisy linear map of x, so CKA is well inside (0, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = x @ rng.normal(size=(d, d + 3)) + 2.0 * rng.normal(size=(n, d + 3))
    return x, y


@BOTH
def test_cka_of_a_representation_with_itself_is_one(debiased: bool) -> None:
    x, _ = features(0)
    assert linear_cka(x, x, debiased=debiased) == pytest.approx(1.0, abs=1e-12)


@BOTH
def test_invariant_to_orthogonal_transform_and_isotropic_scaling(debiased: bool) -> None:
    x, y = features(1)
    q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(x.shape[1], x.shape[1])))
    reference = linear_cka(x, y, debiased=debiased)
    assert 0.05 < abs(reference) < 0.95  # a value that a broken invariance would move
    assert linear_cka(x @ q, y, debiased=debiased) == pytest.approx(reference, rel=1e-10)
    assert linear_cka(x, 7.5 * y, debiased=debiased) == pytest.approx(reference, rel=1e-10)


@BOTH
def test_invariant_to_translation(debiased: bool) -> None:
    # Biased CKA centres explicitly; HSIC_u is translation invariant too (the stream relies on it).
    x, y = features(3)
    reference = linear_cka(x, y, debiased=debiased)
    moved = linear_cka(x + 50.0, y - np.arange(y.shape[1]), debiased=debiased)
    assert moved == pytest.approx(reference, rel=1e-9)


def test_one_dimensional_biased_cka_is_the_squared_pearson_correlation() -> None:
    # x = 1,2,3,4 and y = 1,3,2,4: deviations (-1.5,-.5,.5,1.5) and (-1.5,.5,-.5,1.5),
    # so r = 4 / 5 by hand and r^2 = 0.64.
    x = np.array([[1.0], [2.0], [3.0], [4.0]])
    y = np.array([[1.0], [3.0], [2.0], [4.0]])
    assert linear_cka(x, y, debiased=False) == pytest.approx(0.64, abs=1e-12)


def test_debiasing_removes_the_small_sample_bias_on_independent_features() -> None:
    # Independent N(0, I) features with d >> n: the centred Grams are both close to d H,
    # so biased CKA is about 1 / (1 + (n - 1) / d) = 0.949 (seed to seed sd ~0.003).
    # Debiased CKA is centred on 0 with sd about sqrt(2 / (n (n - 3))) = 0.046 (the
    # U-centred Grams live in a space of n(n-3)/2 dimensions); this seed gives 0.044 and 0.951.
    n, d = 32, 576
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    assert abs(linear_cka(x, y, debiased=True)) < 4 * np.sqrt(2 / (n * (n - 3)))
    assert linear_cka(x, y, debiased=False) == pytest.approx(1 / (1 + (n - 1) / d), abs=0.02)


@BOTH
def test_stream_over_uneven_batches_equals_one_shot(debiased: bool) -> None:
    x, y = features(4, n=50)
    x = x + 1e4  # a large common offset (hidden states carry some): unshifted sums lose it all
    stream = LinearCKAStream()
    start = 0
    for size in (1, 7, 0, 19, 3, 20):
        stream.update(x=x[start : start + size], y=y[start : start + size])
        start += size
    assert stream.n == 50
    np.testing.assert_allclose(stream.value(debiased=debiased), linear_cka(x, y, debiased=debiased), rtol=1e-9)


@BOTH
def test_cka_matrix_diagonal_is_per_layer_cka_and_self_matrix_is_symmetric(debiased: bool) -> None:
    rng = np.random.default_rng(5)
    xs = [rng.normal(size=(30, d)) for d in (4, 9, 16)]
    ys = [x @ rng.normal(size=(x.shape[1], 6)) + rng.normal(size=(30, 6)) for x in xs]
    matrix = cka_matrix(xs=xs, ys=ys, debiased=debiased)
    assert matrix.shape == (3, 3)
    expected = [linear_cka(x, y, debiased=debiased) for x, y in zip(xs, ys, strict=True)]
    np.testing.assert_allclose(np.diag(matrix), expected, rtol=1e-9)
    own = cka_matrix(xs=xs, ys=xs, debiased=debiased)
    np.testing.assert_allclose(own, own.T, rtol=1e-12)
    np.testing.assert_allclose(np.diag(own), 1.0, rtol=1e-12)
    assert np.all(own[~np.eye(3, dtype=bool)] < 1 - 1e-3)


def test_cosine_mean_of_identical_and_negated_rows() -> None:
    x, _ = features(6)
    assert cosine_similarity_mean(x=x, y=x) == pytest.approx(1.0, abs=1e-12)
    assert cosine_similarity_mean(x=x, y=-3.0 * x) == pytest.approx(-1.0, abs=1e-12)
    orthogonal = cosine_similarity_mean(x=np.array([[1.0, 0.0], [0.0, 2.0]]), y=np.array([[0.0, 1.0], [0.0, 5.0]]))
    assert orthogonal == pytest.approx(0.5)


def test_debiased_cka_needs_four_examples() -> None:
    x, y = features(7, n=3)
    with pytest.raises(ValueError, match="n=3"):
        linear_cka(x, y, debiased=True)
    stream = LinearCKAStream()
    stream.update(x=x, y=y)
    with pytest.raises(ValueError, match="n=3"):
        stream.value(debiased=True)
    assert np.isfinite(linear_cka(x, y, debiased=False))


@BOTH
def test_constant_features_are_undefined_not_nan(debiased: bool) -> None:
    x, _ = features(8)
    constant = np.tile(np.random.default_rng(9).normal(size=(1, 5)), (x.shape[0], 1))
    with pytest.raises(UndefinedCKA, match="constant features"):
        linear_cka(x, constant, debiased=debiased)
    stream = LinearCKAStream()
    for start in range(0, x.shape[0], 7):
        stream.update(x=constant[start : start + 7], y=x[start : start + 7])
    with pytest.raises(UndefinedCKA, match="constant features"):
        stream.value(debiased=debiased)
    matrix = cka_matrix(xs=[x, constant], ys=[x], debiased=debiased)
    assert matrix[0, 0] == pytest.approx(1.0) and np.isnan(matrix[1, 0])
