"""Layer 3: compiled transliterations of the per-element batch update, and the choice of one.

- :mod:`alice_ref.engines.contract`: what every engine promises (bit-identical to the core),
  and :func:`~alice_ref.engines.contract.pack_scalars`, the one packing of per-call scalars;
- :mod:`alice_ref.engines.cpu`: numba, for NumPy arrays (and torch CPU tensors' views);
- :mod:`alice_ref.engines.cuda`: fused CuPy kernels, for CuPy arrays on a GPU;
- :func:`select` picks one for a state, :func:`update_state` runs the whole-state update.

The core (:mod:`alice_ref.core`) stays the definition; ``engine="core"`` forces it.
"""

from __future__ import annotations

import numpy as np

from alice_ref.core import FIELDS, AliceConfig, AliceState, Schedule

__all__ = ["ENGINES", "select", "module", "update_state"]

#: The names :func:`select` can return.
ENGINES = ("core", "cpu", "cuda")


def _is_cupy(x) -> bool:
    return type(x).__module__.startswith("cupy")


def _fits(engine: str, arrays) -> str | None:
    """None if ``engine`` can run on ``arrays``, else the reason it cannot."""
    if engine == "core":
        return None
    if engine == "cpu":
        from alice_ref.engines import cpu
        if not cpu.AVAILABLE:
            return "numba is not installed (pip install 'alice-ref[fast]')"
        kind = lambda a: isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float64)  # noqa: E731
    else:
        from alice_ref.engines import cuda
        if not all(_is_cupy(a) for a in arrays):
            return "the arrays are not CuPy arrays"
        if not cuda.available():
            return "no CUDA device"
        kind = lambda a: str(a.dtype) in ("float32", "float64")  # noqa: E731
    for a in arrays:
        if not kind(a):
            return f"an array of type {type(a).__name__} and dtype {a.dtype}"
        if not a.flags.c_contiguous:
            return "an array is not C-contiguous"
    return None


def select(arrays, engine: str | None = None) -> str:
    """The engine for a state: 'cpu', 'cuda' or 'core'.

    With ``engine=None``: 'cpu' when every array is a C-contiguous float32/float64 NumPy array
    and numba is installed, 'cuda' when every array is a C-contiguous float32/float64 CuPy
    array and a GPU is present, else 'core' (any other namespace: torch, JAX, strict, ...).
    A named engine is checked: 'core' always fits; 'cpu' or 'cuda' raise when they cannot run.

    Args:
        arrays: the state's arrays (e.g. every field of every parameter), or an AliceState.
        engine: None (choose), or one of :data:`ENGINES`.

    Returns:
        The engine's name.

    Raises:
        ValueError: an unknown engine, or a named one that cannot run on these arrays.

    Example:
        NumPy float32 state gets the compiled engine (when numba is installed), a list
        gets the core:

        >>> import numpy as np
        >>> from alice_ref.engines import cpu
        >>> select([np.zeros(3, np.float32)]) == ("cpu" if cpu.AVAILABLE else "core")
        True
        >>> select([np.zeros(3, np.float32)], "core"), select([np.zeros(3, np.int32)])
        ('core', 'core')
    """
    if isinstance(arrays, AliceState):
        arrays = [a for f in FIELDS for a in getattr(arrays, f)]
    arrays = list(arrays)
    if engine is None:
        if not arrays:
            return "core"
        first = "cuda" if _is_cupy(arrays[0]) else "cpu"
        return first if _fits(first, arrays) is None else "core"
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES} or None, got {engine!r}")
    why = _fits(engine, arrays)
    if why is not None:
        raise ValueError(f"engine={engine!r} cannot run on this state: {why}")
    return engine


def module(engine: str):
    """The module of an engine, "cpu" or "cuda" (imported on first use)."""
    if engine == "cpu":
        from alice_ref.engines import cpu
        return cpu
    from alice_ref.engines import cuda
    return cuda


def update_state(state: AliceState, sched: Schedule, config: AliceConfig, g_zero, g_plus=None,
                 g_minus=None, *, lr: float | None = None, engine: str | None = None,
                 **options) -> AliceState:
    """One batch on a whole state through an engine, in place: the core's
    ``apply_update(absorb_sample(...) or absorb_quick(...))`` (steps 3-5), bit for bit.

    The state's arrays are updated in place (each must have its own memory; arrays that may
    share memory are refused before anything changes) and the counter advanced.

    Args:
        state: an AliceState of NumPy (engine 'cpu') or CuPy (engine 'cuda') arrays.
        sched: the batch's schedule.
        config: the hyperparameters.
        g_zero: gradients at nu, one per parameter, in the state dtype.
        g_plus: gradients at nu + sigma z (sample step), or None.
        g_minus: gradients at nu - sigma z (sample step), or None.
        lr: current learning rate (None: config.lr).
        engine: 'cpu', 'cuda' or None (:func:`select`); 'core' is refused (the core is not
            in place: call it directly).
        **options: passed to the engine's ``absorb_and_update`` (cpu: ``workspace``,
            ``sqrt``, ``threads``).

    Returns:
        The state with t = sched.t (the same array objects, updated).

    Raises:
        ValueError: gradient lists of the wrong length, two state arrays that may share
            memory, an engine that cannot run here, and the errors of the engine.

    Example:
        Bit-identical to the core on the first (sample) batch:

        >>> import numpy as np
        >>> from alice_ref import (AliceConfig, absorb_sample, apply_update, init,
        ...                        probe_points, schedule)
        >>> from alice_ref.engines import cpu
        >>> c = AliceConfig(lr=0.1, betas=(0.5, 0.999))
        >>> state, sched = init([np.array([1.0, -2.0])]), schedule(1, c)
        >>> points = probe_points(state, [np.array([1.0, -1.0])], 0.1)
        >>> gp, gm, g0 = [[2 * x for x in pt] for pt in points]  # gradients of sum theta^2
        >>> ref = apply_update(absorb_sample(state, sched, gp, gm, g0, c), sched, c)
        >>> if cpu.AVAILABLE:
        ...     new = update_state(state, sched, c, g0, gp, gm)  # state's arrays, in place
        ...     same = all(np.array_equal(getattr(new, f)[0], getattr(ref, f)[0])
        ...                for f in ("mu", "nu", "G", "V", "H", "R"))
        ... else:
        ...     same = True
        >>> same
        True
    """
    engine = select(state, engine)
    if engine == "core":
        raise ValueError("update_state runs an engine in place; no engine fits this state "
                         "(use the core: absorb_sample/absorb_quick and apply_update)")
    n = len(state.mu)
    for name, gs in (("g_zero", g_zero), ("g_plus", g_plus), ("g_minus", g_minus)):
        if gs is not None and len(gs) != n:
            raise ValueError(f"{name} has {len(gs)} arrays but the state has {n} parameters")
    xp_share = np.may_share_memory if engine == "cpu" else _cupy_share
    for i in range(n):
        arrays = [getattr(state, f)[i] for f in FIELDS]
        for a in range(len(FIELDS)):
            for b in range(a + 1, len(FIELDS)):
                if xp_share(arrays[a], arrays[b]):
                    raise ValueError(f"{FIELDS[a]}[{i}] and {FIELDS[b]}[{i}] share memory; the "
                                     f"engine updates them in place (copy one of them first)")
    run = module(engine).absorb_and_update
    for i in range(n):
        run(config, sched, *(getattr(state, f)[i] for f in FIELDS), g_zero[i],
            None if g_plus is None else g_plus[i], None if g_minus is None else g_minus[i],
            lr=lr, **options)
    return state._replace(t=sched.t)


def _cupy_share(a, b) -> bool:
    lo_a, lo_b = a.data.ptr, b.data.ptr
    return lo_a < lo_b + b.nbytes and lo_b < lo_a + a.nbytes
