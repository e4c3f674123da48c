"""Summaries with standard errors: :class:`Estimate` and the two-way (probe x element) jackknife.

Every summary is a function of per-probe, per-element values; its error combines a
delete-one-probe jackknife (``se_probes``) and a delete-one-block jackknife over contiguous
blocks of the group's elements (``se_elements``): se = sqrt(se_probes^2 + se_elements^2) (see
:mod:`alice_ref.tools.diagnostics`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

__all__ = ["Estimate"]


def _block_edges(n: int, max_blocks: int) -> np.ndarray:
    b = max(1, min(int(n), int(max_blocks)))
    return np.linspace(0, n, b + 1).round().astype(int)


class _Sums:
    """Per-probe, per-block sums of named per-element quantities of one group (K x B each)."""

    def __init__(self, n: int, max_blocks: int):
        self.n = int(n)
        self.edges = _block_edges(n, max_blocks)
        self.sizes = np.diff(self.edges).astype(np.float64)
        self.rows: dict[str, list] = {}

    def add(self, name: str, values: np.ndarray):
        """Record one probe's per-element values of quantity ``name``."""
        c = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
        self.rows.setdefault(name, []).append(c[self.edges[1:]] - c[self.edges[:-1]])

    def estimate(self, stat: Callable[[dict], float]) -> Estimate:
        """stat(means) on all data, with delete-one-probe and delete-one-block jackknife SEs.

        ``means`` maps each quantity to its mean over the probes and elements kept.
        """
        M = {k: np.asarray(v) for k, v in self.rows.items()}
        K = len(next(iter(M.values())))
        tot = {k: m.sum() for k, m in M.items()}
        value = _safe(stat, {k: t / (K * self.n) for k, t in tot.items()})
        se_p = _jack([_safe(stat, {k: (tot[k] - M[k][j].sum()) / ((K - 1) * self.n) for k in M})
                      for j in range(K)]) if K > 1 else math.nan
        B = len(self.sizes)
        se_e = _jack([_safe(stat, {k: (tot[k] - M[k][:, b].sum()) / (K * (self.n - self.sizes[b]))
                                   for k in M}) for b in range(B)]) if B > 1 else 0.0
        return Estimate.of(value, se_p, se_e)


def _safe(stat, means):
    try:
        with np.errstate(all="ignore"):  # 0/0 (e.g. no gradient) becomes nan, reported as None
            v = float(stat(means))
    except (ValueError, ZeroDivisionError, FloatingPointError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def _jack(values) -> float:
    """Jackknife standard error from leave-one-out values (nan if any is nan)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2 or not np.all(np.isfinite(v)):
        return math.nan
    return float(math.sqrt((v.size - 1) / v.size * np.sum((v - v.mean()) ** 2)))


@dataclasses.dataclass
class Estimate:
    """A summary value with its standard errors (see the module docstring for the rule).

    se = sqrt(se_probes^2 + se_elements^2): the two-way (probe x element) jackknife error.

    Attributes:
        value: the summary (NaN when undefined, e.g. 0/0).
        se: the combined standard error.
        se_probes: delete-one-probe jackknife error (Monte Carlo error of the random signs).
        se_elements: delete-one-block jackknife error over the group's elements.

    Example:
        Built with :meth:`of`, which combines the two parts:

        >>> Estimate.of(1.0, 0.3, 0.4)
        Estimate(value=1.0, se=0.5, se_probes=0.3, se_elements=0.4)
    """

    value: float
    se: float
    se_probes: float
    se_elements: float

    @classmethod
    def of(cls, value, se_probes, se_elements):
        """An Estimate with se = sqrt(se_probes^2 + se_elements^2) over the finite parts.

        Args:
            value: the summary value.
            se_probes: delete-one-probe jackknife error (NaN if unavailable: it is left out).
            se_elements: delete-one-block jackknife error (NaN if unavailable: left out).

        Returns:
            The Estimate; se is NaN when value is not finite or neither part is finite.

        Example:
            A 3-4-5 triangle, a missing part left out, and an undefined value:

            >>> Estimate.of(2.0, 0.3, 0.4).se, Estimate.of(2.0, float("nan"), 0.4).se
            (0.5, 0.4)
            >>> Estimate.of(float("nan"), 0.3, 0.4).se
            nan
        """
        parts = [s for s in (se_probes, se_elements) if math.isfinite(s)]
        se = math.sqrt(sum(s * s for s in parts)) if parts and math.isfinite(value) else math.nan
        return cls(float(value), se, float(se_probes), float(se_elements))

