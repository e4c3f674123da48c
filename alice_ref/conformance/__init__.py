"""Recorded batches of the official Alice 1.1 optimiser, shipped as package data.

``official_alice_1_1.npz`` (format in README.md beside it) holds, for four small problems, the
initial parameters, the uniform draws of every sample step, the gradients the official
optimiser absorbed and its state after every batch. :func:`load_official` opens it; any
implementation of docs/spec/algorithm.md can be replayed against it without PyTorch.
"""

from __future__ import annotations

import json
from importlib import resources

import numpy as np

__all__ = ["OFFICIAL_FILE", "load_official", "official_meta"]

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
