"""Second-order terms beside the features: curved boundaries between the classes.

A softmax regression is linear in its features ``X (n, d)``, and a straight cut in feature
space cannot wrap the digits. These terms came first for the column "not a digit":
measured by ``benchmarks/unknown.py`` at the default threshold, the linear column rejected
59% of the unseen non-digits and 0.29% of MNIST test; with the terms, 76% and 0.10%. The
digits' columns weigh them too (since format ``model@2``): MNIST test 98.99% -> 99.22%
(10 classes), and 77.7% of the unseen non-digits rejected against 75.0% (at the default
threshold, 0.6 since); forms are read about as before (``benchmarks/pages.py``). In
training, a row stores the ``q`` coordinates and SGD makes each minibatch's terms from
them (``softmax_core.train``): stored whole they took more memory than the features.

The terms: the features' coordinates along the digits' ``q`` leading principal directions
(``z = (X - mean) @ basis``, ``(n, q)``), and all their pairwise products (the upper
triangle of ``z zᵀ``, squares included: ``e = q (q + 1) / 2`` terms). The directions are
fitted on the training digits' features (:func:`fit`) and scaled once so that the terms'
mean squared norm matches the features': the SGD's learning rate suits both. The classes'
weights over them, ``w (e, k)``, are learned with the rest of the model (``softmax_core.train``);
the terms add ``terms(X) @ w`` to the logits (:meth:`Quadratic.logit`). A model file of
format ``model@1`` (before the digits weighed them) holds the weights of "not a digit"
alone, ``(e,)``: read as ``w`` with the digits' columns zero (``softmax_core.model``).

Pure numpy: arrays in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from softmax_core.blas import one_thread
from softmax_core.errors import InvalidInputError

FIT_ROWS = 10_000  # the digits the directions are fitted on (evenly spaced: deterministic)


def n_terms(q: int) -> int:
    """``e``: the number of terms ``q`` directions make (their pairwise products)."""
    return q * (q + 1) // 2


@dataclass(frozen=True, eq=False)
class Quadratic:
    """The terms (see the module doc) and the column's weights over them.

    Attributes:
        mean: (d,) float32, the digits' mean features.
        basis: (d, q) float32, their leading principal directions, scaled.
        w: (e, k) float32, each class's logit per term (zeros until trained).
    """

    mean: NDArray[np.float32]
    basis: NDArray[np.float32]
    w: NDArray[np.float32]

    def __post_init__(self) -> None:
        d, q = self.basis.shape if self.basis.ndim == 2 else (-1, -1)
        arrays = (self.mean, self.basis, self.w)
        if (
            any(a.dtype != np.float32 for a in arrays)
            or q < 1
            or self.mean.shape != (d,)
            or self.w.ndim != 2
            or self.w.shape[0] != n_terms(q)
            or not all(np.isfinite(a).all() for a in arrays)
        ):
            raise InvalidInputError(
                f"second-order terms have mean{self.mean.shape}, basis{self.basis.shape}, "
                f"w{self.w.shape}; expected finite float32 mean (d,), basis (d, q), "
                "w (q(q+1)/2, k)"
            )

    @property
    def d(self) -> int:
        return int(self.basis.shape[0])

    @property
    def q(self) -> int:
        return int(self.basis.shape[1])

    @property
    def k(self) -> int:
        """The classes the weights are for."""
        return int(self.w.shape[1])

    def terms(
        self, X: NDArray[np.float32], out: NDArray[np.float32] | None = None
    ) -> NDArray[np.float32]:
        """Features (n, d) -> their terms (n, e) float32, written into ``out`` when given
        (e.g. the columns of a larger array)."""
        return self.products(self.coordinates(X), out)

    def coordinates(self, X: NDArray[np.float32]) -> NDArray[np.float32]:
        """Features (n, d) -> their coordinates along the directions, ``z (n, q)`` float32."""
        z: NDArray[np.float32] = np.asarray((X - self.mean) @ self.basis, dtype=np.float32)
        return z

    def products(
        self, z: NDArray[np.float32], out: NDArray[np.float32] | None = None
    ) -> NDArray[np.float32]:
        """Coordinates ``z (n, q)`` -> the terms (n, e) float32: their pairwise products,
        written into ``out`` when given."""
        if out is None:
            out = np.empty((z.shape[0], n_terms(self.q)), dtype=np.float32)
        at = 0
        for i in range(self.q):  # row i of the upper triangle: z_i z_i, z_i z_i+1, ...
            np.multiply(z[:, i : i + 1], z[:, i:], out=out[:, at : at + self.q - i])
            at += self.q - i
        return out

    def logit(self, X: NDArray[np.float32]) -> NDArray[np.float32]:
        """Features (n, d) -> what the terms add to the logits, (n, k)."""
        out: NDArray[np.float32] = self.terms(X) @ self.w
        return out

    def with_weights(self, w: NDArray[np.float32]) -> Quadratic:
        return Quadratic(self.mean, self.basis, np.ascontiguousarray(w, dtype=np.float32))


@one_thread()  # a 392-wide covariance: faster on one thread, and the same bits everywhere
def fit(X: NDArray[np.float32], q: int, k: int) -> Quadratic:
    """The terms of digits' features ``X (n, d)``: their mean and ``q`` leading principal
    directions (from at most :data:`FIT_ROWS` rows, evenly spaced), scaled so that the
    terms' mean squared norm equals the features'; weights zero, ``(e, k)``."""
    n, d = X.shape
    if not 1 <= q <= d or n < 2:
        raise InvalidInputError(f"cannot fit {q} directions to features of shape {X.shape}")
    rows = np.asarray(X[np.linspace(0, n - 1, min(n, FIT_ROWS)).astype(np.int64)], np.float64)
    mean = rows.mean(axis=0)
    centred = rows - mean
    _, vectors = np.linalg.eigh(centred.T @ centred)  # eigenvalues ascending
    basis = vectors[:, ::-1][:, :q]
    zero = np.zeros((n_terms(q), k), np.float32)
    raw = Quadratic(mean.astype(np.float32), basis.astype(np.float32), zero)
    t = raw.terms(rows.astype(np.float32))
    scale = np.sqrt(
        (rows**2).sum(axis=1).mean()
        / max(float((t.astype(np.float64) ** 2).sum(axis=1).mean()), 1e-12)
    )
    # a term is a product of two coordinates: the basis times sqrt(scale) scales it by scale
    return Quadratic(mean.astype(np.float32), (basis * np.sqrt(scale)).astype(np.float32), zero)
