"""Alice's state, its field list, initialisation and the checkpoint layout.

docs/spec/algorithm.md#state: per parameter the centre mu, the look-ahead nu, and the averages
G, V, H, R; the batch counter t. :data:`FIELDS` is the one list of per-parameter fields;
:func:`state_to_dict` / :func:`state_from_dict` the one checkpoint layout.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from alice_ref._xp import array_namespace, device, is_array_api_obj

__all__ = ["AliceState", "FIELDS", "init", "params_of", "state_to_dict", "state_from_dict",
           "attributes", "state_dtype"]

#: The per-parameter fields of the state, in checkpoint order.
FIELDS = ("mu", "nu", "G", "V", "H", "R")


class AliceState(NamedTuple):
    """Alice's state (docs/spec/algorithm.md#state): batch and skip counters, per-parameter arrays.

    An immutable NamedTuple. Every array field is a tuple with one array per parameter, in the
    state dtype (the parameter's floating dtype; float32 for float16/bfloat16 parameters).
    Built by :func:`init`, advanced by :func:`absorb_sample` or :func:`absorb_quick` and then
    :func:`apply_update`.

    Attributes:
        t: batches absorbed so far (t of docs/spec/algorithm.md#state; 0 after init).
        mu: the centre (the reported parameters).
        nu: the look-ahead evaluation point, nu = mu + omega delta after an update (R7).
        G: gradient average, EMA_beta1 of g0 + w1 s(nu) + w2 nu.
        V: squared raw-gradient average, EMA_beta2 of g0^2.
        H: curvature average, EMA_beta3 of |h_hat| + w2 (h_hat^2 + w2^2 for 'rms'), R3.
        R: glass density average, EMA_beta3 of rho_hat, R3.
        skipped: batches skipped for non-finite gradients (nonfinite='skip').

    Example:
        One array per parameter, float32 state for a float16 parameter:

        >>> import numpy as np
        >>> s = init([np.zeros(3), np.zeros((2, 2), dtype=np.float16)])
        >>> s.t, s.skipped, [x.shape for x in s.H], s.R[1].dtype
        (0, 0, [(3,), (2, 2)], dtype('float32'))
    """

    t: int
    mu: tuple
    nu: tuple
    G: tuple
    V: tuple
    H: tuple
    R: tuple
    skipped: int = 0


def state_dtype(xp, x):
    """float16/bfloat16 parameters keep float32 state; other floating dtypes keep their own.

    Compared by name: ``dtype in (xp.float16, None)`` would be wrong because NumPy's
    ``np.dtype(None)`` is float64 (so float64 == None is True).
    """
    if str(x.dtype).rsplit(".", 1)[-1] in ("float16", "bfloat16"):
        return xp.float32
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(f"parameters must have a real floating dtype, got {x.dtype}")
    return x.dtype


def init(params, config=None) -> AliceState:
    """Initial Alice state (docs/spec/algorithm.md#state): mu = nu = the parameters, averages 0.

    mu = nu = params, copied into the state dtype (the parameter's floating dtype; float32 for
    float16/bfloat16); G = V = H = R = 0; t = skipped = 0.

    Args:
        params: a sequence of array-API arrays with real floating dtypes (any namespace).
        config: accepted for symmetry with the other functions; the initial state does not
            depend on it.

    Returns:
        The initial AliceState.

    Raises:
        TypeError: an entry that is not an array-API array, or whose dtype is not real
            floating (an integer array, say).

    Example:
        State dtypes, a copied centre, and an integer parameter refused:

        >>> import numpy as np
        >>> p = [np.ones(3, dtype=np.float16), np.zeros((2, 2))]
        >>> s = init(p)
        >>> s.t, s.mu[0].dtype, s.mu[1].dtype  # float16 parameters keep float32 state
        (0, dtype('float32'), dtype('float64'))
        >>> s.nu[0].tolist(), s.G[1].tolist(), s.mu[1] is p[1]
        ([1.0, 1.0, 1.0], [[0.0, 0.0], [0.0, 0.0]], False)
        >>> init([np.arange(3, dtype=np.int32)])
        Traceback (most recent call last):
        ...
        TypeError: parameters must have a real floating dtype, got int32
    """
    if is_array_api_obj(params):  # iterating it would make one parameter per row
        raise TypeError("params must be a sequence of arrays, one per parameter, got a single "
                        f"array of shape {tuple(params.shape)}: wrap it in a list")
    params = list(params)
    for i, p in enumerate(params):
        if not is_array_api_obj(p):
            raise TypeError(f"params[{i}] must be an array-API array, got {type(p).__name__}")
    mu = []
    for p in params:
        xp = array_namespace(p)
        mu.append(xp.astype(p, state_dtype(xp, p), copy=True))
    # Separate arrays for every field, so that engines (alice_ref.engines) may update them.
    fresh = lambda: tuple(array_namespace(m).zeros_like(m) for m in mu)  # noqa: E731
    nu = tuple(array_namespace(m).asarray(m, copy=True) for m in mu)
    return AliceState(0, tuple(mu), nu, fresh(), fresh(), fresh(), fresh(), 0)


def params_of(state: AliceState, like=None) -> list:
    """The parameters to report: the centre mu, optionally cast.

    docs/spec/algorithm.md#one-batch, step 6.

    Args:
        state: an AliceState.
        like: optional sequence of arrays (the model's parameters), one per parameter: mu[i] is
            cast to like[i].dtype.

    Returns:
        A list of arrays: the state's own mu arrays when ``like`` is None, else cast copies.

    Raises:
        ValueError: ``like`` has not one array per parameter.

    Example:
        The centre in the state dtype, or in the model's:

        >>> import numpy as np
        >>> p = [np.ones(2, dtype=np.float16)]
        >>> s = init(p)
        >>> params_of(s)[0].dtype, params_of(s, like=p)[0].dtype
        (dtype('float32'), dtype('float16'))
    """
    if like is None:
        return list(state.mu)
    like = list(like)
    if len(like) != len(state.mu):
        raise ValueError(f"like has {len(like)} arrays but the state has {len(state.mu)} "
                         "parameters")
    return [array_namespace(m).astype(m, p.dtype) for m, p in zip(state.mu, like)]


def state_to_dict(state: AliceState) -> dict:
    """Flatten a state into a plain dict of scalars and arrays (for checkpoints).

    The keys are 't', 'skipped', 'n_params' and 'f/i' for each field f in mu, nu, G, V, H, R
    and parameter i; the arrays are the state's own (not copied). The inverse is
    :func:`state_from_dict`. Raises nothing itself.

    Args:
        state: an AliceState.

    Returns:
        A dict with 3 + 6 n_params entries.

    Example:
        One parameter gives nine entries:

        >>> import numpy as np
        >>> sorted(state_to_dict(init([np.zeros(2)])))
        ['G/0', 'H/0', 'R/0', 'V/0', 'mu/0', 'n_params', 'nu/0', 'skipped', 't']
    """
    d = {"t": int(state.t), "skipped": int(state.skipped), "n_params": len(state.mu)}
    for f in FIELDS:
        for i, x in enumerate(getattr(state, f)):
            d[f"{f}/{i}"] = x
    return d


def state_from_dict(d: dict, like=None) -> AliceState:
    """Rebuild an AliceState from :func:`state_to_dict`'s dict (checkpoint restore).

    Arrays go to the namespace and device of ``like`` when given (their dtypes are kept), else
    are taken as they are; a missing 'skipped' reads as 0.

    Args:
        d: the dict (any mapping with those keys).
        like: optional sequence of arrays, one per parameter, giving the namespace, device and
            expected shapes.

    Returns:
        The AliceState.

    Raises:
        ValueError: a missing key, a ``like`` of the wrong length, or an array whose shape is
            not that of its ``like`` entry.

    Example:
        A round trip, and a dict that lacks a key:

        >>> import numpy as np
        >>> s = state_from_dict(state_to_dict(init([np.array([1.0, 2.0])])), like=[np.zeros(2)])
        >>> s.t, s.mu[0].tolist()
        (0, [1.0, 2.0])
        >>> state_from_dict({"n_params": 1})
        Traceback (most recent call last):
        ...
        ValueError: checkpoint dict lacks key 'mu/0'
    """
    try:
        n = int(d["n_params"])
        fields = {f: [d[f"{f}/{i}"] for i in range(n)] for f in FIELDS}
        t, skipped = int(d["t"]), int(d.get("skipped", 0))
    except KeyError as e:
        raise ValueError(f"checkpoint dict lacks key {e.args[0]!r}") from None
    if like is not None:
        like = list(like)
        if len(like) != n:
            raise ValueError(f"checkpoint has {n} parameters but like has {len(like)}")
        conv = {}
        for f, xs in fields.items():
            conv[f] = []
            for x, p in zip(xs, like):
                xp = array_namespace(p)
                a = xp.asarray(x, device=device(p))
                if tuple(a.shape) != tuple(p.shape):
                    raise ValueError(f"checkpoint {f} has shape {tuple(a.shape)}, parameter "
                                     f"has {tuple(p.shape)}")
                conv[f].append(a)
        fields = conv
    return AliceState(t, *(tuple(fields[f]) for f in FIELDS), skipped)


def attributes(state: AliceState) -> list[dict]:
    """The official optimiser's "attributes": per parameter, the means of R and of H.

    glass_density = mean(R), the averaged glass density estimate (rho of R1, estimated as in
    R3); curvature = mean(H), the averaged curvature magnitude. An empty parameter reports 0.0.
    Raises nothing itself.

    Args:
        state: an AliceState.

    Returns:
        A list with one dict {'glass_density': float, 'curvature': float} per parameter.

    Example:
        Means of H and R per parameter; an empty parameter reports zeros:

        >>> import numpy as np
        >>> H, R = (np.array([1.0, 3.0]), np.zeros(0)), (np.array([2.0, 4.0]), np.zeros(0))
        >>> attributes(init([np.zeros(2), np.zeros(0)])._replace(H=H, R=R))
        [{'glass_density': 3.0, 'curvature': 2.0}, {'glass_density': 0.0, 'curvature': 0.0}]
    """
    out = []
    for H, R in zip(state.H, state.R):
        xp = array_namespace(H)
        nonempty = math.prod(H.shape) > 0
        out.append({"glass_density": float(xp.mean(R)) if nonempty else 0.0,
                    "curvature": float(xp.mean(H)) if nonempty else 0.0})
    return out
