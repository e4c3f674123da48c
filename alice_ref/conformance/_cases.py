"""The conformance cases: the recorded official batches and alice_ref's own recorded vectors.

A :class:`Case` is one run of docs/spec/algorithm.md#one-batch from the initial state: the
hyperparameters, the initial parameters and, per batch, the probes and the gradients absorbed
(g+, g-, g0 on a sample step, g0 on a quick step) and the expected state after it (mu, nu, G,
V, H, R, t), with the tolerance the comparison uses and its derivation. Format of the files:
README.md beside this module.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources

import numpy as np

__all__ = ["FIELDS", "DEFAULTS", "Batch", "Case", "cases", "official_cases", "recorded_cases",
           "VECTORS_FILE", "REL", "FLOOR", "rel_tolerance"]

#: The per-parameter fields of the state compared after every batch (docs/spec/algorithm.md#state).
FIELDS = ("mu", "nu", "G", "V", "H", "R")

#: Every hyperparameter with its default (docs/spec/algorithm.md#hyperparameters). ``phi`` None
#: means 1 - beta1 and ``lr_max`` None means 2 lr: a port resolves them itself.
DEFAULTS = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "w1": 0.0, "w2": 0.0, "phi": None,
            "omega": 1.0, "limit_method": "adam", "lr_min": 0.0, "lr_max": None,
            "scale_bounds_with_lr": True, "hess_comp": "abs", "grad_glass": True,
            "quick_steps": 3}

#: File name of alice_ref's own recorded vectors inside this package (written by record.py).
VECTORS_FILE = "alice_ref_vectors.npz"

#: Relative tolerance for float32 state (README.md, "Tolerances"): 1e-5 = 84 float32 ulps
#: (2**-23 = 1.19e-7 each), a budget of 7 ulps per batch over 12 batches; the recording is
#: accepted only where a replay in the other precision stays within a quarter of it.
REL = {"float32": 1e-5, "float64": 1e-5 * 2.0 ** -29}
#: Floor of the scale, as a fraction of the largest element of the field (README.md).
FLOOR = 0.1

DERIVATION = (
    "elementwise |got - ref| <= rel (|ref| + floor max|ref|) per field and batch, the max over "
    "the field's elements (all parameters). rel(float32) = 1e-5 = 84 ulps of 2**-23: each batch "
    "rounds a few times per element (about 7 ulps relative, the EMAs, alpha, h_opt with its "
    "square root, d, the bounds, the step), the averages damp old errors (EMA weights < 1) and "
    "mu, nu add one step per batch, so over the batches of a case the rounding of any correct "
    "evaluation order stays within a budget of 7 ulps per batch. rel(float64) is the same "
    "number of float64 ulps (1e-5 * 2**-52 / 2**-23 = 1.86e-14). The floor (1e-3 of the "
    "largest element) is for elements that crossed zero: they are differences of larger "
    "numbers and carry those numbers' rounding. Each recorded case was accepted only when a "
    "replay of its gradients in the other precision deviated from it by at most rel/4 (in "
    "float32 units, scaled to float64 ulps for float64 cases): the case is well conditioned, "
    "so two correct implementations, each within rel/4 of the exact result, agree within rel/2.")


def rel_tolerance(dtype: str) -> float:
    """The relative tolerance of a state dtype ('float32' or 'float64'; see :data:`REL`)."""
    return REL[dtype]


@dataclass(frozen=True, eq=False)
class Batch:
    """One recorded batch of a :class:`Case` (NumPy arrays, one per parameter).

    Attributes:
        t: the batch number, 1-based (the expected t after it).
        sample: True on a sample step (three gradients), False on a quick step (one).
        u: the uniform draws (flat, all parameters) of a sample step, or None.
        probes: z = -1 where u < 0.5 else +1, one array per parameter, or None (quick step).
        grads: (g+, g-, g0) on a sample step, (g0,) on a quick step; each a list per parameter.
        expected: field name -> the expected state after the batch, flat over all parameters.
    """

    t: int
    sample: bool
    u: object
    probes: object
    grads: tuple
    expected: dict


@dataclass(frozen=True, eq=False)
class Case:
    """One conformance case: hyperparameters, initial parameters, recorded batches, tolerance.

    Attributes:
        name: a unique id ('official-c0', 'f64-rms-glass-adam-q3', ...).
        source: 'official' (the official Alice 1.1, independent of alice_ref) or 'alice_ref'
            (vectors recorded from alice_ref's core: regression and porting vectors).
        dtype: the state dtype, 'float32' or 'float64'.
        config: every hyperparameter of :data:`DEFAULTS` (official names).
        param_shapes: the shape of each parameter.
        params0: the initial parameters, one array per parameter.
        batches: the recorded batches, in order.
        rel: the relative tolerance; floor: the scale floor (README.md, "Tolerances").
        derivation: the tolerance's derivation, in words.
    """

    name: str
    source: str
    dtype: str
    config: dict
    param_shapes: tuple
    params0: tuple
    batches: tuple
    rel: float
    floor: float
    derivation: str

    @property
    def sizes(self) -> list:
        """The number of elements of each parameter."""
        return [math.prod(s) for s in self.param_shapes]

    def split(self, flat) -> list:
        """A flat vector (all parameters concatenated) as one array per parameter."""
        cuts = np.cumsum([0] + self.sizes)
        flat = np.asarray(flat)
        return [flat[cuts[i]:cuts[i + 1]].reshape(s) for i, s in enumerate(self.param_shapes)]


def full_config(given: dict) -> dict:
    """Every hyperparameter: ``given`` over :data:`DEFAULTS` (betas as a tuple)."""
    cfg = dict(DEFAULTS)
    cfg.update(given)
    cfg["betas"] = tuple(cfg["betas"])
    return cfg


def _make_batches(case_split, dtype, t_sample, us, grads, states):
    """Batches from per-batch lists: u (or None), grads (k, n) and states (6, n)."""
    out = []
    for b, (sample, u, g, st) in enumerate(zip(t_sample, us, grads, states)):
        probes = None
        if sample:
            probes = case_split(np.where(u < 0.5, -1.0, 1.0).astype(dtype))
        out.append(Batch(t=b + 1, sample=bool(sample), u=u, probes=probes,
                         grads=tuple(case_split(np.asarray(x, dtype)) for x in g),
                         expected={f: np.asarray(st[i], dtype) for i, f in enumerate(FIELDS)}))
    return tuple(out)


def _build(name, source, dtype, config, shapes, params0, sample, us, grads, states, derivation):
    case = Case(name, source, dtype, full_config(config), tuple(tuple(s) for s in shapes), (),
                (), REL[dtype], FLOOR, derivation)
    batches = _make_batches(case.split, dtype, sample, us, grads, states)
    return Case(case.name, source, dtype, case.config, case.param_shapes,
                tuple(case.split(np.asarray(params0, dtype))), batches, case.rel, FLOOR,
                derivation)


OFFICIAL_DERIVATION = (
    "float32 state; the official run kept some intermediates of its CUDA kernels in double "
    "(README.md: agreement to about 1e-5 relative, not bit for bit), so rel = 1e-5 as for "
    "alice_ref's float32 vectors, with the same floor (tests/test_alice_conformance.py).")


def official_cases(data=None) -> list:
    """The recorded official Alice 1.1 batches as cases 'official-c0' ... 'official-c3'.

    Independent of alice_ref: recorded from the official code (README.md, provenance). The
    parameters are flat, as the recording stores them.
    """
    from alice_ref.conformance import load_official, official_meta
    d = load_official() if data is None else data
    meta = official_meta(d)
    out = []
    for c, entry in enumerate(meta["configs"]):
        sizes = entry["param_sizes"]
        sample, us, grads, states = [], [], [], []
        for b in range(meta["batches"]):
            u = d.get(f"c{c}_b{b}_u")
            sample.append(u is not None)
            us.append(None if u is None else np.asarray(u))
            grads.append(np.asarray(d[f"c{c}_b{b}_grads"]))
            states.append([d[f"c{c}_b{b}_{f}"] for f in FIELDS])
        out.append(_build(f"official-c{c}", "official", "float32", entry["config"],
                          [(s,) for s in sizes], d[f"c{c}_params0"], sample, us, grads, states,
                          OFFICIAL_DERIVATION))
    return out


def load_vectors() -> dict:
    """alice_ref's own recorded vectors (:data:`VECTORS_FILE`) as a dict of NumPy arrays."""
    with resources.as_file(resources.files("alice_ref.conformance") / VECTORS_FILE) as path:
        with np.load(path) as d:
            return {k: d[k] for k in d.files}


def vectors_meta(data) -> dict:
    """The metadata of alice_ref's vectors (JSON stored as UTF-8 bytes, README.md)."""
    return json.loads(np.asarray(data["meta"], np.uint8).tobytes().decode("utf-8"))


def recorded_cases(data=None) -> list:
    """alice_ref's own recorded vectors as cases (source 'alice_ref'; README.md, provenance).

    Recorded from alice_ref's core by :mod:`alice_ref.conformance.record`: regression and
    porting vectors for the modes the official recording does not cover, not an independent
    check of the core (that is the official replay).
    """
    d = load_vectors() if data is None else data
    meta = vectors_meta(d)
    out = []
    for c, entry in enumerate(meta["cases"]):
        dt = entry["dtype"]
        sample = [b + 1 in entry["sample_batches"] for b in range(entry["batches"])]
        n, B, S = sum(math.prod(s) for s in entry["param_shapes"]), entry["batches"], sum(sample)
        flat = d[f"c{c}"]
        cuts = np.cumsum([0, n, S * n, (2 * S + B) * n, B * len(FIELDS) * n])
        params0 = flat[cuts[0]:cuts[1]]
        u_all = flat[cuts[1]:cuts[2]].reshape(S, n)
        g_all = flat[cuts[2]:cuts[3]].reshape(-1, n)
        st = flat[cuts[3]:cuts[4]].reshape(B, len(FIELDS), n)
        us, grads, i_u, i_g = [], [], 0, 0
        for s in sample:
            k = 3 if s else 1
            us.append(u_all[i_u] if s else None)
            grads.append(g_all[i_g:i_g + k])
            i_u, i_g = i_u + s, i_g + k
        out.append(_build(entry["name"], "alice_ref", dt, entry["config"], entry["param_shapes"],
                          params0, sample, us, grads, list(st), DERIVATION))
    return out


_CACHE: dict = {}


def cases(select=None) -> list:
    """Every conformance case: the official recording first, then alice_ref's own vectors.

    Args:
        select: None for all; else a string or a sequence of strings, each a case name or a
            prefix ending in '*' ('official-*', 'f32-*'), or a callable ``case -> bool``.

    Returns:
        A list of :class:`Case` (loaded once per process, then shared: do not modify them).

    Raises:
        ValueError: a name or pattern that selects no case.

    Example:
        Four official cases and alice_ref's vectors in both dtypes:

        >>> cs = cases()
        >>> [c.name for c in cs[:4]], sorted({c.dtype for c in cs})
        (['official-c0', 'official-c1', 'official-c2', 'official-c3'], ['float32', 'float64'])
        >>> [c.name for c in cases("official-c1")], cases("official-c1")[0].batches[0].sample
        (['official-c1'], True)
    """
    if "all" not in _CACHE:
        _CACHE["all"] = official_cases() + recorded_cases()
    every = _CACHE["all"]
    if select is None:
        return list(every)
    if callable(select):
        return [c for c in every if select(c)]
    patterns = [select] if isinstance(select, str) else list(select)
    out = []
    for p in patterns:
        hit = [c for c in every
               if (c.name.startswith(p[:-1]) if p.endswith("*") else c.name == p)]
        if not hit:
            raise ValueError(f"no conformance case matches {p!r} (names: official-c0..3, "
                             f"{every[-1].name}, ...)")
        out += [c for c in hit if all(c is not o for o in out)]
    return out
