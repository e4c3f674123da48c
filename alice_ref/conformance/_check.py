"""Run a port's step function over the conformance cases and report how it compares.

``check(make_step)``: ``make_step(config)`` returns ``step(state, probes, grads) -> state`` over
the porter's arrays; every recorded batch is fed to it and the state it returns (mu, nu, G, V,
H, R, t) is compared with the recording (README.md beside this module: format and tolerances).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from alice_ref._xp import to_numpy
from alice_ref.conformance._cases import FIELDS
from alice_ref.conformance._cases import cases as _all_cases

__all__ = ["check", "compare_state", "Report", "CaseResult", "Failure", "rel_error",
           "ConformanceError", "initial_state", "read_state"]

#: Where each field is defined (the first place a wrong value points to).
WHERE = {
    "t": "docs/spec/algorithm.md#one-batch, step 1 (t <- t + 1)",
    "mu": "docs/spec/algorithm.md#one-batch, step 5 (Alg. 3: the step, mu <- mu + phi delta)",
    "nu": "docs/spec/algorithm.md#one-batch, step 5 (Alg. 3: nu <- mu + omega delta)",
    "G": "docs/spec/algorithm.md#one-batch, step 3 (G <- EMA_beta1t(G, g0 + w1 s(nu) + w2 nu))",
    "V": "docs/spec/algorithm.md#one-batch, step 3 (V <- EMA_beta2t(V, g0^2))",
    "H": "docs/spec/algorithm.md#one-batch, step 3 (H <- EMA_beta3t(H, |h| + w2 or h^2 + w2^2))",
    "R": "docs/spec/algorithm.md#one-batch, step 3 (R <- EMA_beta3t(R, 2 (gbar - g0)^2 / sigma))",
}


class ConformanceError(AssertionError):
    """A port failed the conformance check; the message is the report's failure diff."""


def rel_error(got, ref, floor: float) -> float:
    """max over elements of |got - ref| / (|ref| + floor max|ref|); inf for a wrong shape or a
    non-finite value, 0 where both are 0."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        return float("inf")
    scale = np.abs(ref) + floor * np.max(np.abs(ref), initial=0.0)
    err = np.abs(got - ref)
    err = np.where(np.isfinite(got), err, np.inf)
    return float(np.max(np.where(scale > 0, err / np.where(scale > 0, scale, 1.0),
                                 np.where(err > 0, np.inf, 0.0)), initial=0.0))


@dataclass
class Failure:
    """The first failing batch of a case.

    Attributes:
        case: the case name. batch: 0-based index (t = batch + 1). t: the batch number.
        sample: whether the batch is a sample step.
        fields: field name -> relative error, for every field over the tolerance ('t' with
            error inf when the counter is wrong; empty when the step raised).
        message: the diff (or the exception), ready to print.
    """

    case: str
    batch: int
    t: int
    sample: bool
    fields: dict
    message: str


@dataclass
class CaseResult:
    """One case's outcome: ``passed``, batches run, worst relative error per field (over the
    batches compared), worst error / tolerance, and the first :class:`Failure` or None."""

    name: str
    source: str
    dtype: str
    batches: int
    worst: dict
    rel: float
    failure: Failure | None = None

    @property
    def passed(self) -> bool:
        return self.failure is None


@dataclass
class Report:
    """The result of :func:`check`.

    Attributes:
        results: one :class:`CaseResult` per case, in order.
        passed: True iff every case passed.
        cases / batches: how many cases and batches were compared.
        worst: field -> the worst relative error over all cases, as a fraction of each case's
            tolerance (<= 1 passes).
        first_failure: the first failing case's :class:`Failure`, or None.
    """

    results: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results) and bool(self.results)

    @property
    def cases(self) -> int:
        return len(self.results)

    @property
    def batches(self) -> int:
        return sum(r.batches for r in self.results)

    @property
    def failures(self) -> list:
        return [r.failure for r in self.results if r.failure is not None]

    @property
    def first_failure(self):
        f = self.failures
        return f[0] if f else None

    @property
    def worst(self) -> dict:
        out = dict.fromkeys(FIELDS, 0.0)
        for r in self.results:
            for k, v in r.worst.items():
                out[k] = max(out[k], v / r.rel)
        return out

    def summary(self) -> str:
        """A few lines: verdict, counts, worst error per field (in tolerances), first failure."""
        n_fail = len(self.failures)
        lines = [f"alice conformance: {'PASS' if self.passed else 'FAIL'}: {self.cases} cases, "
                 f"{self.batches} batches, {self.cases - n_fail} cases pass, {n_fail} fail",
                 "worst error / tolerance per field: "
                 + ", ".join(f"{k} {v:.3g}" for k, v in self.worst.items())]
        if self.first_failure is not None:
            failing = ", ".join(f.case for f in self.failures[:8])
            more = "" if n_fail <= 8 else f" and {n_fail - 8} more"
            lines.append(f"failing cases: {failing}{more}")
            lines.append("first failure:\n" + self.first_failure.message)
        return "\n".join(lines)

    __str__ = summary

    def raise_for_failure(self) -> None:
        """Raise :class:`ConformanceError` (an AssertionError, so pytest shows it) unless the
        report passed."""
        if not self.passed:
            raise ConformanceError(self.summary())


def initial_state(case, to_array=None) -> dict:
    """The spec's initial state (docs/spec/algorithm.md#state) of a case, as a dict: t = 0,
    mu = nu = the parameters, G = V = H = R = 0, each a list with one array per parameter."""
    conv = (lambda a: a) if to_array is None else to_array
    p = [np.array(x, copy=True) for x in case.params0]
    st = {"t": 0, "mu": [conv(x.copy()) for x in p], "nu": [conv(x.copy()) for x in p]}
    for f in FIELDS[2:]:
        st[f] = [conv(np.zeros_like(x)) for x in p]
    return st


def read_state(state) -> dict:
    """A port's state as {'t': int, field: flat float64 NumPy array over all parameters}.

    Accepts a mapping or an object with attributes t, mu, nu, G, V, H, R; each field a
    sequence of arrays (one per parameter, any library: converted with DLPack or NumPy) or
    a single array. Raises KeyError/AttributeError naming a missing field.
    """
    get = (lambda k: state[k]) if isinstance(state, Mapping) else (lambda k: getattr(state, k))
    out = {"t": get("t")}
    for f in FIELDS:
        v = get(f)
        xs = v if isinstance(v, (list, tuple)) else [v]
        out[f] = np.concatenate([np.asarray(to_numpy(x), np.float64).reshape(-1) for x in xs]
                                ) if xs else np.zeros(0)
    try:
        out["t"] = int(np.asarray(to_numpy(out["t"])) if not isinstance(out["t"], int)
                       else out["t"])
    except (TypeError, ValueError):
        out["t"] = None
    return out


def _diff(case, b, batch, got, errs, limit=3) -> str:
    lines = [f"case {case.name} ({case.source}, {case.dtype}), batch {b} (t = {batch.t}, "
             f"{'sample' if batch.sample else 'quick'} step): "
             + ", ".join(f"{k} off by {v:.3g} (tolerance {case.rel:.3g})" if k != "t" else
                         f"t = {got['t']} (expected {batch.t})" for k, v in errs.items())]
    sizes = case.sizes
    owner = np.repeat(np.arange(len(sizes)), sizes)
    start = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
    for f in errs:
        if f == "t":
            lines.append(f"  t: {WHERE['t']}")
            continue
        ref, g = batch.expected[f].astype(np.float64), got[f]
        lines.append(f"  {f}: {WHERE[f]}")
        if g.shape != ref.shape:
            lines.append(f"    got {g.size} elements, expected {ref.size}")
            continue
        scale = np.abs(ref) + case.floor * np.max(np.abs(ref), initial=0.0)
        e = np.where(np.isfinite(g), np.abs(g - ref), np.inf) / np.where(scale > 0, scale, 1.0)
        for j in np.argsort(-e, kind="stable")[:limit]:
            if e[j] <= case.rel:
                break
            p = int(owner[j])
            lines.append(f"    param {p} element {j - start[p]}: got {g[j]:.9g}, expected "
                         f"{ref[j]:.9g} (relative error {e[j]:.3g})")
    return "\n".join(lines)


def compare_state(case, b, got) -> tuple:
    """Compare a state read by :func:`read_state` with batch ``b`` of ``case``: (errors per
    field, the fields over the tolerance with their errors)."""
    batch = case.batches[b]
    errs = {f: rel_error(got[f], batch.expected[f], case.floor) for f in FIELDS}
    bad = {f: e for f, e in errs.items() if not e <= case.rel}
    if got["t"] != batch.t:
        bad = {"t": float("inf"), **bad}
    return errs, bad


def _run_case(make_step, case, to_array, stop: bool) -> CaseResult:
    conv = (lambda a: a) if to_array is None else to_array
    res = CaseResult(case.name, case.source, case.dtype, 0, dict.fromkeys(FIELDS, 0.0), case.rel)
    try:
        step = make_step(dict(case.config))
    except Exception as e:  # noqa: BLE001 - reported, not raised
        res.failure = Failure(case.name, 0, 1, case.batches[0].sample, {},
                              f"case {case.name}: make_step(config) raised "
                              f"{type(e).__name__}: {e}")
        return res
    state = initial_state(case, to_array)
    for b, batch in enumerate(case.batches):
        probes = None if batch.probes is None else [conv(np.array(z)) for z in batch.probes]
        grads = tuple([conv(np.array(g)) for g in gs] for gs in batch.grads)
        try:
            state = step(state, probes, grads)
            got = read_state(state)
        except Exception as e:  # noqa: BLE001 - reported, not raised
            res.batches = b + 1
            res.failure = Failure(case.name, b, batch.t, batch.sample, {},
                                  f"case {case.name} ({case.source}, {case.dtype}), batch {b} "
                                  f"(t = {batch.t}, {'sample' if batch.sample else 'quick'} "
                                  f"step): the step raised {type(e).__name__}: {e}")
            return res
        errs, bad = compare_state(case, b, got)
        res.batches = b + 1
        for f, e in errs.items():
            res.worst[f] = max(res.worst[f], e)
        if bad and res.failure is None:
            res.failure = Failure(case.name, b, batch.t, batch.sample, bad,
                                  _diff(case, b, batch, got, bad))
            if stop:
                return res
    return res


def check(make_step, cases=None, *, to_array=None, stop_at_failure: bool = True) -> Report:
    """Check a port of Alice against the conformance cases (the kit's Python entry).

    For each case, ``step = make_step(config)`` (``config``: a dict of every hyperparameter of
    docs/spec/algorithm.md#hyperparameters, official names, None for phi and lr_max meaning
    their defaults); then, batch by batch, ``state = step(state, probes, grads)`` with

    - ``state``: the spec's initial state at batch 0 (a dict: 't' = 0 and 'mu', 'nu', 'G', 'V',
      'H', 'R', each a list with one array per parameter), afterwards whatever the previous
      call returned (a mapping or an object with those names, so a port may keep its own
      state type and extra entries);
    - ``probes``: the Rademacher signs z (one array per parameter) on a sample step, None on a
      quick step;
    - ``grads``: ``(g_plus, g_minus, g_zero)`` on a sample step, ``(g_zero,)`` on a quick step,
      each a list with one array per parameter: the gradients the recorded run absorbed.

    The step decides itself (by its own schedule) what the batch is; it should raise if the
    recording gives it a different number of gradients. Arrays are NumPy, or ``to_array(a)``
    of them (``torch.from_numpy``, ``jax.numpy.asarray``, ...); the returned arrays may be of
    any library that DLPack or ``np.asarray`` can read.

    Args:
        make_step: ``make_step(config) -> step`` (see above).
        cases: the cases (default: all of :func:`alice_ref.conformance.cases`); a selection as
            that function takes, or a list of Case objects.
        to_array: conversion of the NumPy inputs to the port's arrays (default: none).
        stop_at_failure: stop a case at its first failing batch (default True).

    Returns:
        A :class:`Report`: ``passed``, ``cases``, ``batches``, ``worst`` (per field, in units
        of each case's tolerance), ``first_failure`` (case, batch, fields, diff message);
        ``print(report)`` gives a summary and ``report.raise_for_failure()`` raises it.

    Example:
        The core passes; a port that forgets the L1 term w1 s(nu) in G fails at the first
        batch of the first case with w1 > 0, naming G:

        >>> from alice_ref.conformance import check, core_step
        >>> report = check(core_step, "official-*")
        >>> report.passed, report.cases, report.batches
        (True, 4, 144)
        >>> def no_w1(config):
        ...     return core_step(dict(config, w1=0.0))
        >>> bad = check(no_w1, "official-c1")
        >>> bad.passed, bad.first_failure.batch, sorted(bad.first_failure.fields)
        (False, 0, ['G'])
    """
    if cases is None or isinstance(cases, str) or callable(cases) or (
            isinstance(cases, (list, tuple)) and cases and isinstance(cases[0], str)):
        cases = _all_cases(cases)
    report = Report()
    for case in cases:
        report.results.append(_run_case(make_step, case, to_array, stop_at_failure))
    return report
