"""Conformance kit: the recorded batches of Alice as test cases for any implementation.

Two recordings ship as package data (format in README.md beside this module):

- ``official_alice_1_1.npz``: what the official Alice 1.1 optimiser did on four small problems,
  batch by batch (:func:`load_official`); independent of alice_ref, the core replays it in
  tests/test_alice_conformance.py;
- ``alice_ref_vectors.npz``: alice_ref's own recorded vectors for every mode the core adds
  (curvature mode x glass x limit method x quick steps, w1/w2 > 0, phi/omega off their defaults,
  float32 and float64), recorded from the core by :mod:`alice_ref.conformance.record`:
  regression and porting vectors, not an independent check.

:func:`cases` gives both as :class:`Case` objects; :func:`check` runs a port's step function
over them and returns a :class:`Report`; :func:`export` writes them as .npz + JSON for ports in
other languages, whose results :func:`check_results` compares (``alice-ref conformance``).
:mod:`alice_ref.conformance.steps` has the step functions of the core and both adapters.
docs/porting.md walks a porter through it.
"""

from __future__ import annotations

import json
from importlib import resources

import numpy as np

from alice_ref.conformance._cases import (
    DEFAULTS,
    FIELDS,
    FLOOR,
    REL,
    Batch,
    Case,
    cases,
    official_cases,
    recorded_cases,
)
from alice_ref.conformance._check import (
    CaseResult,
    ConformanceError,
    Failure,
    Report,
    check,
    initial_state,
    read_state,
    rel_error,
)
from alice_ref.conformance._files import check_results, export, load_exported, write_results
from alice_ref.conformance.steps import core_step, jax_step, torch_step

__all__ = ["OFFICIAL_FILE", "load_official", "official_meta",
           "FIELDS", "DEFAULTS", "REL", "FLOOR", "Batch", "Case", "cases", "official_cases",
           "recorded_cases", "check", "Report", "CaseResult", "Failure", "ConformanceError",
           "rel_error", "initial_state", "read_state", "export", "load_exported",
           "write_results", "check_results", "core_step", "torch_step", "jax_step"]

#: File name of the recording inside this package.
OFFICIAL_FILE = "official_alice_1_1.npz"


def load_official():
    """The recorded official batches as a dict of NumPy arrays (read once from the package).

    Keys are described in this package's README.md (``c{c}_params0``, ``c{c}_b{b}_u``,
    ``c{c}_b{b}_grads``, ``c{c}_b{b}_{mu,nu,G,V,H,R}`` and ``meta``).

    Example:
        Four configurations, 36 batches each:

        >>> d = load_official()
        >>> meta = official_meta(d)
        >>> meta["batches"], len(meta["configs"]), d["c0_b0_grads"].shape[0]
        (36, 4, 3)
    """
    with resources.as_file(resources.files(__name__) / OFFICIAL_FILE) as path:
        with np.load(path) as d:
            return {k: d[k] for k in d.files}


def official_meta(data) -> dict:
    """The recording's metadata.

    A dict ``{"format", "batches", "configs": [{"config", "param_sizes"}, ...]}``.
    """
    return json.loads(str(data["meta"]))
