"""The worked port (array_api_port.py) on dask.array, through array-api-compat.

What had to change for dask (docs/porting.md, "A worked port"): nothing in the arithmetic.
Two things around it: the inputs become dask arrays (``array_api_compat.dask.array.asarray``),
and the state is materialised after every batch (``dask.persist``), otherwise each batch's
graph holds every batch before it and reading the state recomputes the whole run.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from array_api_port import make_step as _spec_step  # noqa: E402


def make_step(config: dict):
    """The conformance kit's entry, on dask arrays (dask imported here: collecting this file
    without dask installed must not fail)."""
    import array_api_compat.dask.array as xp
    import dask

    dask.config.set(scheduler="synchronous")  # tiny arrays: threads only add overhead
    step = _spec_step(config)

    def run(state, probes, grads):
        lazy = lambda xs: [xp.asarray(x) for x in xs]  # noqa: E731
        if state["t"] == 0:
            state = {"t": 0, **{k: lazy(v) for k, v in state.items() if k != "t"}}
        new = step(state, None if probes is None else lazy(probes),
                   tuple(lazy(g) for g in grads))
        keys = [k for k in new if k != "t"]
        return {"t": new["t"], **dict(zip(keys, dask.persist(*[new[k] for k in keys])))}
    return run
