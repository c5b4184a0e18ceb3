"""Linear CKA between two representations of the same examples, biased and debiased.

Biased CKA (Kornblith et al. 2019) compares centred linear Gram matrices; it is biased
upwards when examples are few relative to features (independent random features score
near 1 when d >> n). Debiased CKA (Nguyen, Raghu & Kornblith 2021) plugs in the unbiased
HSIC estimator of Song et al. (2012) instead, so independent features score near 0.

Three routes, cross-checked by the tests: `linear_cka` (one shot), `LinearCKAStream`
(feature-space sums, for token-level features too many to hold) and `cka_matrix`
(layer x layer, from per-layer Grams). Everything is float64.

Both estimators are invariant to translating X or Y, so every route first subtracts a
coordinate-wise median: sums stay small (less cancellation when features carry a large
common offset, as LLM hidden states do) and constant features become exactly zero, so
"undefined" is detected exactly rather than drowned in rounding noise. A median, not a
mean, because one outlier row (an attention-sink token) would drag a mean far off.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class UndefinedCKA(ValueError):
    """CKA is 0/0: a representation has no variation across the examples (constant features)."""


def linear_cka(x: np.ndarray, y: np.ndarray, *, debiased: bool) -> float:
    """CKA between x (n x d1) and y (n x d2), rows matched by example."""
    x, y = _shifted(x), _shifted(y)
    n = _matched_rows(x, y)
    _check_n(n, debiased=debiased)
    if debiased:
        kx, ky = x @ x.T, y @ y.T
        np.fill_diagonal(kx, 0.0)
        np.fill_diagonal(ky, 0.0)
        cross, self_x, self_y = _hsic_u(kx, ky), _hsic_u(kx, kx), _hsic_u(ky, ky)
    else:
        # ||Yc'Xc||^2 / (||Xc'Xc|| ||Yc'Yc||), with the self terms squared as _ratio expects.
        xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
        cross = float(np.sum((yc.T @ xc) ** 2))
        self_x, self_y = float(np.sum((xc.T @ xc) ** 2)), float(np.sum((yc.T @ yc) ** 2))
    return _ratio(cross, self_x, self_y)


class LinearCKAStream:
    """Accumulates matched batches of rows and gives exactly what `linear_cka` would on
    all rows stacked, holding only feature-space sums (O(d1 d2 + d1^2 + d2^2) memory)."""

    def __init__(self) -> None:
        self._n = 0
        self._ref_x: np.ndarray | None = None
        self._ref_y: np.ndarray | None = None

    @property
    def n(self) -> int:
        return self._n

    def update(self, *, x: np.ndarray, y: np.ndarray) -> None:
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if _matched_rows(x, y) == 0:
            return
        if self._ref_x is None:
            # The first batch fixes the shift for good; any fixed shift is exact (see module docstring).
            self._ref_x, self._ref_y = np.median(x, axis=0), np.median(y, axis=0)
            d1, d2 = x.shape[1], y.shape[1]
            self._sx, self._sy = np.zeros(d1), np.zeros(d2)
            self._xy, self._xx, self._yy = np.zeros((d1, d2)), np.zeros((d1, d1)), np.zeros((d2, d2))
            self._ax, self._bx, self._ay, self._by = np.zeros(d1), np.zeros(d1), np.zeros(d2), np.zeros(d2)
            self._sa = self._sb = self._sab = self._saa = self._sbb = 0.0
        x, y = x - self._ref_x, y - self._ref_y
        a, b = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)  # squared row norms
        self._n += x.shape[0]
        self._sx += x.sum(axis=0)
        self._sy += y.sum(axis=0)
        self._xy += x.T @ y
        self._xx += x.T @ x
        self._yy += y.T @ y
        self._ax += a @ x
        self._bx += b @ x
        self._ay += a @ y
        self._by += b @ y
        self._sa += float(a.sum())
        self._sb += float(b.sum())
        self._sab += float(a @ b)
        self._saa += float(a @ a)
        self._sbb += float(b @ b)

    def value(self, *, debiased: bool) -> float:
        n = self._n
        _check_n(n, debiased=debiased)
        sx, sy = self._sx, self._sy
        if debiased:
            # n(n-3) HSIC_u from sums: tr(K~L~) = ||X'Y||^2 - sum a b, 1'K~1 = ||sx||^2 - sum a,
            # 1'K~L~1 = sum_i (x_i.sx - a_i)(y_i.sy - b_i), expanded term by term.
            kk, ll = sx @ sx - self._sa, sy @ sy - self._sb
            cross = hsic_u_terms(
                n,
                trace=np.sum(self._xy**2) - self._sab,
                k_sum=kk,
                l_sum=ll,
                kl_sum=sx @ self._xy @ sy - self._ay @ sy - self._bx @ sx + self._sab,
            )
            self_x = hsic_u_terms(
                n,
                trace=np.sum(self._xx**2) - self._saa,
                k_sum=kk,
                l_sum=kk,
                kl_sum=sx @ self._xx @ sx - 2 * self._ax @ sx + self._saa,
            )
            self_y = hsic_u_terms(
                n,
                trace=np.sum(self._yy**2) - self._sbb,
                k_sum=ll,
                l_sum=ll,
                kl_sum=sy @ self._yy @ sy - 2 * self._by @ sy + self._sbb,
            )
        else:
            # Centred (cross-)covariances without the rows: Xc'Yc = X'Y - sx sy'/n.
            cross = float(np.sum((self._xy - np.outer(sx, sy) / n) ** 2))
            self_x = float(np.sum((self._xx - np.outer(sx, sx) / n) ** 2))
            self_y = float(np.sum((self._yy - np.outer(sy, sy) / n) ** 2))
        return _ratio(cross, self_x, self_y)


def cka_matrix(*, xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], debiased: bool) -> np.ndarray:
    """CKA of every layer in xs against every layer in ys (len(xs) x len(ys)), all on the
    same n examples. Each layer's centred Gram (U-centred when debiased) is built once and
    normalised, so each entry is one inner product. An entry whose layer has constant
    features is nan (undefined) rather than an error, so one such layer spares the rest."""
    gx = np.stack([_normalised_gram(x, debiased=debiased) for x in xs]).reshape(len(xs), -1)
    gy = np.stack([_normalised_gram(y, debiased=debiased) for y in ys]).reshape(len(ys), -1)
    if gx.shape[1] != gy.shape[1]:
        raise ValueError("cka_matrix: xs and ys hold different numbers of examples")
    return gx @ gy.T


def cosine_similarity_mean(*, x: np.ndarray, y: np.ndarray) -> float:
    """Mean over examples of the cosine similarity of row x_i with row y_i."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"cosine_similarity_mean: shapes differ, {x.shape} vs {y.shape}")
    norms = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
    if not np.all(norms > 0):
        raise UndefinedCKA("cosine_similarity_mean: a row is all zeros, its cosine is undefined")
    return float(np.mean(np.einsum("ij,ij->i", x, y) / norms))


def _shifted(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected an (examples x features) matrix, got shape {x.shape}")
    return x - np.median(x, axis=0)


def _matched_rows(x: np.ndarray, y: np.ndarray) -> int:
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must be matrices with the same rows, got {x.shape} and {y.shape}")
    return x.shape[0]


def _check_n(n: int, *, debiased: bool) -> None:
    # HSIC_u divides by n(n-3) and (n-1)(n-2); the biased one needs two rows to centre.
    minimum = 4 if debiased else 2
    if n < minimum:
        kind = "debiased" if debiased else "biased"
        raise ValueError(f"{kind} CKA needs at least {minimum} examples, got n={n}")


def _hsic_u(kx: np.ndarray, ky: np.ndarray) -> float:
    """n(n-3) HSIC_u for Grams with zeroed diagonals (the common factor cancels in CKA)."""
    kx1, ky1 = kx.sum(axis=1), ky.sum(axis=1)
    return float(hsic_u_terms(kx.shape[0], trace=np.vdot(kx, ky), k_sum=kx1.sum(), l_sum=ky1.sum(), kl_sum=kx1 @ ky1))


def hsic_u_terms(n: float, *, trace: Any, k_sum: Any, l_sum: Any, kl_sum: Any) -> Any:
    """n(n-3) HSIC_u (Song et al. 2012) from its four sums over zero-diagonal Grams K and L:
    tr(KL), 1'K1, 1'L1 and 1'KL1. Floats or arrays of them (the drift bootstrap passes one
    value per layer and resample); the one place the estimator's formula is written."""
    return trace + k_sum * l_sum / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * kl_sum


def _ratio(cross: float, self_x: float, self_y: float) -> float:
    # self_x and self_y are squared norms of centred Grams: >= 0 in exact arithmetic, and
    # exactly 0 for constant features thanks to the median shift.
    if self_x <= 0 or self_y <= 0:
        which = "x" if self_x <= 0 else "y"
        raise UndefinedCKA(f"CKA is undefined: {which} has no variation across the examples (constant features)")
    return float(cross / np.sqrt(self_x * self_y))


def _normalised_gram(x: np.ndarray, *, debiased: bool) -> np.ndarray:
    x = _shifted(x)
    n = x.shape[0]
    _check_n(n, debiased=debiased)
    if debiased:
        # U-centring (Szekely & Rizzo 2014): <U(K), U(L)> equals n(n-3) HSIC_u(K, L).
        gram = x @ x.T
        np.fill_diagonal(gram, 0.0)
        means = gram.sum(axis=0) / (n - 2)
        means -= means.sum() / (2 * (n - 1))
        gram -= means[:, None]
        gram -= means[None, :]
        np.fill_diagonal(gram, 0.0)
    else:
        xc = x - x.mean(axis=0)
        gram = xc @ xc.T  # = H K H
    norm = np.linalg.norm(gram)
    return gram / norm if norm > 0 else np.full_like(gram, np.nan)
