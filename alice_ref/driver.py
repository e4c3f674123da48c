"""Batch driver for NumPy/CuPy (or any array-API) users of the functional Alice core.

``value_and_grad(params) -> (loss, grads)`` evaluates the current minibatch at the given
parameters (a list of arrays, the model's dtypes). :func:`run_batch` performs the 3 (sample step)
or 1 (quick step) evaluations in the order of docs/spec/algorithm.md#one-batch, step 3, checks
them for non-finite values before any state changes, absorbs them and updates the state. Probes
come from a seeded NumPy Generator.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from alice_ref._atomic import commit_section
from alice_ref._xp import array_namespace, device, is_array_api_obj, to_numpy
from alice_ref.checks import check_count, check_lr
from alice_ref.core import (
    FIELDS,
    AliceConfig,
    AliceState,
    absorb_quick,
    absorb_sample,
    apply_update,
    attributes,
    init,
    params_of,
    probe_points,
    realised_displacements,
    schedule,
    state_from_dict,
    state_to_dict,
)
from alice_ref.core.batch import _as_state
from alice_ref.engines import module as _engine_module
from alice_ref.engines import select, update_state

__all__ = ["NonFiniteGradientError", "draw_rademacher", "run_batch", "Alice", "minimize"]

#: Names of the evaluations of a batch (NonFiniteGradientError.evaluation), in the order of
#: docs/spec/algorithm.md#one-batch, step 3.
EVALUATIONS = ("g+", "g-", "g0")
_WHERE = {"g+": "nu + sigma z", "g-": "nu - sigma z", "g0": "nu"}


class NonFiniteGradientError(FloatingPointError):
    """A gradient evaluation contained NaN or Inf; the optimiser state was left unchanged.

    Raised by :func:`run_batch` (and by the adapters) under nonfinite='raise', before any state
    changes; under nonfinite='skip' the batch is skipped and counted instead
    (docs/spec/algorithm.md#beyond-the-official-code). A FloatingPointError.

    Args:
        index: the parameter (position in the parameter list) with a non-finite entry; each
            argument is kept as an attribute of the same name.
        evaluation: the evaluation that failed: 'g+', 'g-' or 'g0' (in the order of
            docs/spec/algorithm.md#one-batch, step 3).
        t: the number of the batch that failed (state.t + 1).

    Example:
        The first evaluation of batch 1 (a sample step) is g+; the state stays at t = 0:

        >>> import numpy as np
        >>> opt = Alice([np.zeros(2)])
        >>> try:
        ...     opt.step(lambda p: (0.0, [np.full(2, np.nan)]))
        ... except NonFiniteGradientError as e:
        ...     print(e.index, e.evaluation, e.t, opt.state.t)
        0 g+ 1 0
    """

    def __init__(self, index: int, evaluation: str, t: int):
        self.index, self.evaluation, self.t = index, evaluation, t
        super().__init__(f"non-finite gradient in parameter {index} at evaluation {evaluation} of "
                         f"batch {t}; the optimiser state is unchanged (nonfinite='skip' ignores "
                         f"such batches)")


def draw_rademacher(rng: np.random.Generator, like: Sequence) -> list:
    """Draw one Rademacher probe z per parameter with the official convention (R2).

    Per parameter, in order: u ~ U[0, 1) per element (``rng.random``), z = -1 where u < 0.5,
    else +1, in that array's namespace, device and dtype. Rademacher signs (z^2 = 1) are R2's
    optimal probes: least Hutchinson variance and the farthest glass probing per unit RMS step.
    Nothing is checked.

    Args:
        rng: a NumPy Generator; it advances by one uniform per element.
        like: a sequence of arrays giving each probe's shape, namespace, device and dtype.

    Returns:
        A list of arrays of -1 and +1, one per entry of ``like``.

    Example:
        The signs of an independent draw of the same uniforms, parameter after parameter:

        >>> import numpy as np
        >>> like = [np.zeros(2), np.zeros(3, dtype=np.float32)]
        >>> z = draw_rademacher(np.random.default_rng(0), like)
        >>> u = np.random.default_rng(0).random(5)
        >>> np.concatenate(z).tolist() == np.where(u < 0.5, -1.0, 1.0).tolist(), z[1].dtype
        (True, dtype('float32'))
    """
    out = []
    for p in like:
        xp = array_namespace(p)
        negative = rng.random(size=tuple(p.shape)) < 0.5
        z = negative.astype(np.dtype(str(p.dtype).rsplit(".", 1)[-1]) if str(p.dtype).endswith(
            ("float32", "float64")) else np.float64)
        z *= -2.0
        z += 1.0  # 1 - 2 [u < 0.5]: exactly -1 or +1
        out.append(xp.asarray(z, dtype=p.dtype, device=device(p)))
    return out


def _rng_position(rng):
    """A copy of a NumPy Generator's position (None for other sources of probes)."""
    bg = getattr(rng, "bit_generator", None)
    return None if bg is None else copy.deepcopy(bg.state)


def _restore_rng(rng, saved) -> None:
    if saved is not None:
        rng.bit_generator.state = saved


def _first_nonfinite(grads) -> int | None:
    for i, g in enumerate(grads):
        xp = array_namespace(g)
        if not bool(xp.all(xp.isfinite(g))):
            return i
    return None


def run_batch(state: AliceState, config: AliceConfig, value_and_grad: Callable, rng,
              *, like: Sequence | None = None, lr: float | None = None, probes=None,
              engine: str | None = None, inplace: bool = False, threads: int = 1):
    """Run one Alice batch: evaluate, check, absorb, update.

    docs/spec/algorithm.md#one-batch, steps 1-5.

    With sched = schedule(state.t + 1, config): on a sample step draw z (:func:`draw_rademacher`)
    and evaluate g+ = g(nu + sigma z), g- = g(nu - sigma z), g0 = g(nu) in that order (R3's
    three-point kernel), else g0 only, so a batch costs 3 or 1 evaluations ((3+q)/(q+1) on
    average, R8); then absorb them and, after warm-up, update mu and nu (R5, R6, R7). sigma is
    the current learning rate. Every evaluation is checked for NaN/Inf before any state
    changes. On any failure (a non-finite gradient or an exception from ``value_and_grad``) a
    NumPy Generator ``rng`` is put back where it was, so a skipped batch is as if it never
    happened and a retried one draws the same probes.

    Args:
        state: the current AliceState.
        config: the hyperparameters.
        value_and_grad: ``value_and_grad(params) -> (loss, grads)`` on the current minibatch,
            params and grads being lists with one array per parameter.
        rng: the probe source, a NumPy Generator (unused on quick steps or with ``probes``).
        like: the model's parameters, whose dtypes the evaluation points take (default: the
            state's mu).
        lr: the current learning rate = sigma, finite and > 0 (default: config.lr).
        probes: optional list of z arrays replacing the draw from ``rng`` (tests inject signs),
            one per parameter and of its shape (checked before anything is evaluated).
        engine: who absorbs and updates: None picks with :func:`alice_ref.engines.select`
            (the compiled CPU engine for NumPy float32/float64 state when numba is installed,
            the CuPy kernels for CuPy arrays, else the core); 'core' forces the reference.
            Every engine gives the core's results bit for bit.
        inplace: let an engine update ``state``'s own arrays (the caller gives ``state`` up,
            as :class:`Alice` does); otherwise an engine works on copies and ``state`` is
            left as it was. The core never updates in place.
        threads: threads sharing the CPU engine's blocks (an integer >= 1; same results).

    Returns:
        The pair (new_state, loss), where loss is what ``value_and_grad`` returned at nu (None
        for a skipped batch).

    Raises:
        NonFiniteGradientError: a NaN/Inf gradient under nonfinite='raise'; it names the
            parameter and the evaluation. Under 'skip' the old state is returned with
            ``skipped`` + 1 instead.
        ValueError: lr not finite and > 0 (before anything changes), probes or gradients
            whose number or shapes do not match the parameters.
        TypeError: lr is not a real number, or a probe is not an array.

    Example:
        On L(x) = |x|^2 / 2 (Hessian I, no glass) batch 1 is a warm-up sample step: H takes
        |g+ - g-| / (2 sigma) = 1 and R takes 0 whatever the signs. A NaN gradient then fails
        batch 2 at its first evaluation and leaves the state as it was:

        >>> import numpy as np
        >>> c = AliceConfig(lr=0.5, betas=(0.5, 0.999))
        >>> vg = lambda p: (0.5 * float(p[0] @ p[0]), [p[0]])
        >>> rng = np.random.default_rng(0)
        >>> s, loss = run_batch(init([np.array([1.0, 2.0])]), c, vg, rng)
        >>> loss, s.t, s.H[0].tolist(), s.R[0].tolist(), s.mu[0].tolist()
        (2.5, 1, [1.0, 1.0], [0.0, 0.0], [1.0, 2.0])
        >>> bad = lambda p: (0.0, [p[0] * np.nan])
        >>> try:
        ...     run_batch(s, c, bad, rng)
        ... except NonFiniteGradientError as e:
        ...     print(e.index, e.evaluation, e.t)
        0 g+ 2
        >>> s2, loss = run_batch(s, c.replace(nonfinite="skip"), bad, rng)
        >>> s2.skipped, s2.t, loss, s2.mu is s.mu
        (1, 1, None, True)
    """
    batch = _evaluate(state, config, value_and_grad, rng, like, lr, probes, engine, threads)
    if batch.skipped:
        return state._replace(skipped=state.skipped + 1), None
    if not inplace:
        return _commit(state, config, batch, inplace=False), batch.loss
    with commit_section():  # the caller gives ``state`` up: write it whole or not at all
        return _commit(state, config, batch, inplace=True), batch.loss


class _Batch(NamedTuple):
    """What a batch's evaluation phase hands to its commit (all checked)."""

    sched: object
    loss: object
    g0: list | None
    gp: list | None
    gm: list | None
    lr: float | None
    engine: str
    options: dict
    saved_rng: object = None
    displacements: list | None = None
    skipped: bool = False


def _evaluate(state, config, value_and_grad, rng, like, lr, probes, engine, threads) -> _Batch:
    """Steps 1-3/4 up to the absorb: schedule, checks, probes and the checked evaluations.

    Changes nothing but the generator, which any exception (or a skipped batch) puts back.
    """
    sched = schedule(state.t + 1, config)
    name = select(state, engine)
    threads = check_count("threads", threads, lo=1)
    if lr is not None:
        lr = check_lr(lr)
    sigma = config.lr if lr is None else lr
    for dt in {str(m.dtype) for m in state.mu}:  # the scalars as the state dtype carries them
        config.check_dtype(dt, lr)
    like = list(state.mu) if like is None else list(like)
    if sched.sample and probes is not None:
        probes = _as_state(probes, state.mu, "probes")  # no silent broadcasting of z
    saved_rng = _rng_position(rng) if sched.sample and probes is None else None

    def evaluate(points, which):
        out = value_and_grad(points)
        try:
            loss, grads = out
        except (TypeError, ValueError):
            raise TypeError(f"value_and_grad must return a pair (loss, grads), got "
                            f"{type(out).__name__}") from None
        raw = list(grads) if isinstance(grads, (list, tuple)) else grads
        grads = _as_state(raw, state.mu, f"grads[{{i}}] at {_WHERE[which]} ({which})")
        bad = _first_nonfinite(grads)
        if bad is not None:
            raise NonFiniteGradientError(bad, which, sched.t)
        if which != EVALUATIONS[2]:  # own g+ and g- now: value_and_grad may reuse one buffer
            grads = [array_namespace(g).asarray(g, copy=True) if g is r else g
                     for g, r in zip(grads, raw)]
        return loss, grads

    try:
        if sched.sample:
            z = draw_rademacher(rng, state.mu) if probes is None else probes
            plus, minus, nu = _points(state, z, sigma, like, name)
            disp = realised_displacements((plus, minus, nu), state)
            if any(d is not None for d in disp):
                name = "core"  # the engines take the nominal sigma; rounded points need the core
            _, gp = evaluate(plus, EVALUATIONS[0])
            _, gm = evaluate(minus, EVALUATIONS[1])
            loss, g0 = evaluate(nu, EVALUATIONS[2])
        else:
            gp = gm = disp = None
            loss, g0 = evaluate(_points(state, None, sigma, like, name)[2], EVALUATIONS[2])
        return _Batch(sched, loss, g0, gp, gm, lr, name,
                      {"threads": threads} if name == "cpu" else {}, saved_rng, disp)
    except NonFiniteGradientError:
        _restore_rng(rng, saved_rng)
        if config.nonfinite == "raise":
            raise
        return _Batch(sched, None, None, None, None, lr, name, {}, skipped=True)
    except BaseException:
        _restore_rng(rng, saved_rng)  # any failed evaluation leaves the RNG where it was, too
        raise


def _points(state, z, sigma, like, engine):
    """probe_points (step 3): the core's, or on an engine's path its one-pass form (bit-equal)
    and nu handed out as a read-only view instead of a copy (NumPy)."""
    same = all(p.dtype == m.dtype for p, m in zip(like, state.mu))
    if engine == "core" or not same:
        return probe_points(state, z, sigma, like)
    run = _engine_module(engine).probe_points
    pm = [run(n, zi, sigma) for n, zi in zip(state.nu, z)] if z is not None else None
    nu = [_read_only(n) for n in state.nu]
    return (None, None, nu) if pm is None else ([a for a, _ in pm], [b for _, b in pm], nu)


def _read_only(x):
    if isinstance(x, np.ndarray):
        v = x.view()
        v.flags.writeable = False
        return v
    return x.copy()


def _contiguous(x):
    if isinstance(x, np.ndarray):
        return np.ascontiguousarray(x)
    import cupy  # the only other namespace an engine takes
    return cupy.ascontiguousarray(x)


def _commit(state, config, batch: _Batch, inplace: bool) -> AliceState:
    """Steps 3-5 on the checked gradients: the core, or an engine (bit-equal; in place when
    ``inplace``, so the caller runs it in a commit section)."""
    sched, g0, gp, gm, lr, name = batch.sched, batch.g0, batch.gp, batch.gm, batch.lr, batch.engine
    if name == "core":
        sigma = config.lr if lr is None else lr
        new = (absorb_quick(state, sched, g0, config) if gp is None else
               absorb_sample(state, sched, gp, gm, g0, config, sigma,
                             displacements=batch.displacements))
        return apply_update(new, sched, config, lr)
    if not inplace:
        state = state._replace(**{f: tuple(a.copy() for a in getattr(state, f)) for f in FIELDS})
    g0, gp, gm = (None if g is None else [_contiguous(x) for x in g] for g in (g0, gp, gm))
    return update_state(state, sched, config, g0, gp, gm, lr=lr, engine=name, **batch.options)


class Alice:
    """Stateful convenience wrapper around the functional core for NumPy/CuPy users.

    Holds an AliceConfig (``config``), an AliceState (``state``), a NumPy Generator for the
    probes (``rng``) and the current learning rate ``lr`` = sigma, which a schedule may change
    between steps (with scale_bounds_with_lr the step bounds follow it, R6). Each :meth:`step`
    is one :func:`run_batch`. The optimiser owns its state arrays: an engine (``engine``,
    chosen by :func:`alice_ref.engines.select`: compiled for NumPy float32/float64 state)
    updates them in place, so :attr:`state` and :attr:`mu` hand out copies on that path (a
    state once read never changes), and a state assigned to :attr:`state` is copied in.

    Args:
        params: the initial parameters, a sequence of floating arrays (any array-API
            namespace); the evaluation points and :attr:`params` take their dtypes.
        config: an AliceConfig, or None to build one from ``**hyper``.
        seed: seed of the default probe generator, ``np.random.default_rng(seed)``.
        rng: a NumPy Generator to use instead of ``seed``.
        engine: None (choose per state), 'core' (the reference), 'cpu' or 'cuda'; checked on
            each step (see :func:`run_batch`).
        threads: threads sharing the CPU engine's blocks (results do not depend on it).
        **hyper: AliceConfig fields (lr, betas, ...) when ``config`` is None.

    Raises:
        TypeError: both ``config`` and hyperparameters given, a parameter that is not a
            floating array, or a hyperparameter of the wrong type.
        ValueError: a hyperparameter out of range (see AliceConfig).

    Example:
        Two hundred batches lower a quadratic's loss:

        >>> import numpy as np
        >>> from alice_ref.landscapes import Quadratic
        >>> q = Quadratic(4, seed=0)
        >>> opt = Alice([np.zeros(4)], lr=0.05, betas=(0.75, 0.999), seed=0)
        >>> for _ in range(200):
        ...     _ = opt.step(lambda p: (q.loss(p[0]), [q.grad(p[0])]))
        >>> bool(q.loss(opt.params[0]) < q.loss(np.zeros(4)))
        True
    """

    def __init__(self, params, config: AliceConfig | None = None, *, seed=0, rng=None,
                 engine: str | None = None, threads: int = 1, **hyper):
        if config is not None and hyper:
            raise TypeError("give either config or hyperparameters, not both")
        self.config = config if config is not None else AliceConfig(**hyper)
        params = params if is_array_api_obj(params) else list(params)
        self._state = init(params, self.config)  # refuses a bare array (not one per row)
        self._like = list(params)
        self.rng = rng if rng is not None else np.random.default_rng(seed)
        self.lr = self.config.lr
        self.engine = select(self._state, engine) if engine is not None else None
        self.threads = check_count("threads", threads, lo=1)

    @property
    def state(self) -> AliceState:
        """The current AliceState (a copy on an in-place engine's path, so it stays as read)."""
        return self._owned(self._state)

    @state.setter
    def state(self, value: AliceState) -> None:
        self._state = self._owned(value)

    def _owned(self, state: AliceState) -> AliceState:
        if select(state, self.engine) == "core":  # the core never writes into its arrays
            return state
        return state._replace(**{f: tuple(a.copy() for a in getattr(state, f)) for f in FIELDS})

    @property
    def params(self) -> list:
        """The centre mu in the parameters' dtypes (what inference and checkpoints see).

        Example:
            float16 parameters keep float32 state but report float16:

            >>> import numpy as np
            >>> opt = Alice([np.ones(2, dtype=np.float16)])
            >>> opt.params[0].dtype, opt.mu[0].dtype
            (dtype('float16'), dtype('float32'))
        """
        return params_of(self._state, self._like)

    @property
    def mu(self) -> list:
        """The centre mu in the state dtype (a new list; copies on an in-place engine's path).

        Example:
            Before any update the centre is the initial parameters:

            >>> import numpy as np
            >>> Alice([np.array([1.0, 2.0])]).mu[0].tolist()
            [1.0, 2.0]
        """
        mu = self._state.mu
        return list(mu) if select(self._state, self.engine) == "core" else [a.copy() for a in mu]

    def step(self, value_and_grad: Callable, probes=None):
        """Run one batch (see :func:`run_batch`) at the current ``lr``.

        docs/spec/algorithm.md#one-batch, steps 1-5.

        Args:
            value_and_grad: ``value_and_grad(params) -> (loss, grads)`` on the current
                minibatch (lists with one array per parameter).
            probes: optional z arrays replacing the draw from ``rng`` (tests).

        Returns:
            The loss at nu, or None when the batch was skipped (nonfinite='skip').

        Raises:
            NonFiniteGradientError: a NaN/Inf gradient under nonfinite='raise' (state and
                generator unchanged).
            ValueError: ``lr`` was set to a value that is not finite and > 0.
            TypeError: ``lr`` was set to something that is not a real number.

        Example:
            Gradient evaluations per batch follow R8, 3 on a sample step and 1 on a quick
            step; with beta1 = 0.5 and q = 3, batches 1-2 are warm-up and batch 4 samples:

            >>> import numpy as np
            >>> calls = []
            >>> def vg(p):
            ...     calls.append(1)
            ...     return float(p[0] @ p[0]), [2 * p[0]]
            >>> opt = Alice([np.ones(3)], lr=0.1, betas=(0.5, 0.999), quick_steps=3)
            >>> counts = []
            >>> for _ in range(4):
            ...     before = len(calls)
            ...     _ = opt.step(vg)
            ...     counts.append(len(calls) - before)
            >>> counts
            [3, 3, 1, 3]
        """
        batch, done = None, False
        try:
            batch = _evaluate(self._state, self.config, value_and_grad, self.rng, self._like,
                              self.lr, probes, self.engine, self.threads)
            with commit_section():  # the new state, whole, or the old one (Ctrl-C included)
                self._state = (self._state._replace(skipped=self._state.skipped + 1)
                               if batch.skipped else
                               _commit(self._state, self.config, batch, inplace=True))
                done = True
        except BaseException:
            if not done and batch is not None:  # interrupted between evaluation and commit
                _restore_rng(self.rng, batch.saved_rng)
            raise
        return batch.loss

    def attributes(self) -> list[dict]:
        """Per parameter: mean glass density and mean curvature (alice_ref.core.attributes).

        Returns:
            A list with one dict {'glass_density': float, 'curvature': float} per parameter.

        Example:
            After one sample batch of L(x) = |x|^2 (Hessian 2 I, no glass):

            >>> import numpy as np
            >>> opt = Alice([np.ones(3)], lr=0.5)
            >>> _ = opt.step(lambda p: (float(p[0] @ p[0]), [2 * p[0]]))
            >>> opt.attributes()
            [{'glass_density': 0.0, 'curvature': 2.0}]
        """
        return attributes(self._state)

    def state_dict(self) -> dict:
        """Everything needed for a bit-identical resume: state arrays, counters, lr, RNG state.

        The keys are those of :func:`alice_ref.core.state_to_dict` (arrays copied to NumPy)
        plus 'lr' and 'rng' (the Generator's ``bit_generator.state``).

        Returns:
            A picklable dict; restore it with :meth:`load_state_dict`.

        Example:
            Resuming from a checkpoint repeats the uninterrupted run exactly:

            >>> import numpy as np
            >>> from alice_ref.landscapes import Quadratic
            >>> q = Quadratic(3, seed=0)
            >>> vg = lambda p: (q.loss(p[0]), [q.grad(p[0])])
            >>> a = Alice([np.zeros(3)], lr=0.05, betas=(0.5, 0.999), seed=1)
            >>> for _ in range(6):
            ...     _ = a.step(vg)
            >>> ckpt = a.state_dict()
            >>> for _ in range(5):
            ...     _ = a.step(vg)
            >>> b = Alice([np.zeros(3)], lr=0.05, betas=(0.5, 0.999), seed=99)
            >>> b.load_state_dict(ckpt)
            >>> for _ in range(5):
            ...     _ = b.step(vg)
            >>> ckpt["t"], np.array_equal(a.params[0], b.params[0])
            (6, True)
        """
        d = {k: (np.array(to_numpy(v), copy=True) if hasattr(v, "shape") else v)
             for k, v in state_to_dict(self._state).items()}
        d["lr"] = self.lr
        d["rng"] = copy.deepcopy(self.rng.bit_generator.state)
        return d

    def load_state_dict(self, d: dict) -> None:
        """Restore from :meth:`state_dict`: state arrays, counters, lr and generator position.

        Arrays go to the parameters' namespace and device, in the state dtype; a missing 'lr'
        reads as config.lr.

        Args:
            d: a dict made by :meth:`state_dict`.

        Raises:
            ValueError: a missing state key, or a shape that does not match the parameters
                (nothing is changed then).
            KeyError: no 'rng' entry.

        Example:
            The restored optimiser continues with the same counter, centre and probes:

            >>> import numpy as np
            >>> a = Alice([np.array([1.0, 2.0])], seed=3)
            >>> _ = a.step(lambda p: (0.0, [p[0]]))
            >>> b = Alice([np.zeros(2)])
            >>> b.load_state_dict(a.state_dict())
            >>> b.state.t, b.mu[0].tolist(), b.rng.random() == a.rng.random()
            (1, [1.0, 2.0], True)
        """
        new = state_from_dict(d, like=self._state.mu)
        new = new._replace(**{f: tuple(array_namespace(p).astype(x, p.dtype)
                                       for x, p in zip(getattr(new, f), self._state.mu))
                              for f in FIELDS})
        lr = check_lr(d.get("lr", self.config.lr))
        self.rng.bit_generator.state = copy.deepcopy(d["rng"])
        self.lr = lr
        self._state = new


def minimize(value_and_grad: Callable, params, n_batches: int, *, config: AliceConfig | None = None,
             seed=0, callback: Callable | None = None, **hyper):
    """Run ``n_batches`` Alice batches from ``params`` (a loop over :meth:`Alice.step`).

    Args:
        value_and_grad: ``value_and_grad(params) -> (loss, grads)``, called with a list of
            arrays, one per parameter (choosing the minibatch is up to it).
        params: the initial parameters.
        n_batches: the number of batches (>= 0).
        config: an AliceConfig, or None to build one from ``**hyper``.
        seed: the probe seed (``np.random.default_rng(seed)``).
        callback: ``callback(t, loss, opt)``, called after each batch (a progress bar, a
            stopping rule); returning True stops early.
        **hyper: AliceConfig fields when ``config`` is None.

    Returns:
        The pair (opt, losses): the Alice wrapper (``opt.params``, ``opt.state``) and the list
        of losses at nu (None for skipped batches).

    Raises:
        ValueError: n_batches < 0, or a hyperparameter out of range.
        TypeError: both ``config`` and hyperparameters given.
        NonFiniteGradientError: a NaN/Inf gradient under nonfinite='raise'.

    Example:
        Alice approaches a quadratic's minimiser, and a callback stops a run early:

        >>> import numpy as np
        >>> from alice_ref.landscapes import Quadratic
        >>> q = Quadratic(4, seed=0)
        >>> vg = lambda p: (q.loss(p[0]), [q.grad(p[0])])
        >>> opt, losses = minimize(vg, [np.zeros(4)], 200, lr=0.05, betas=(0.75, 0.999))
        >>> d0, d = np.linalg.norm(q.minimiser), np.linalg.norm(opt.params[0] - q.minimiser)
        >>> len(losses), bool(d < 0.01 * d0)
        (200, True)
        >>> opt, losses = minimize(vg, [np.zeros(4)], 200, callback=lambda t, loss, o: t == 5)
        >>> len(losses), opt.state.t
        (5, 5)
    """
    check_count("n_batches", n_batches)
    opt = Alice(params, config, seed=seed, **hyper)
    losses = []
    for _ in range(int(n_batches)):
        loss = opt.step(value_and_grad)
        losses.append(loss)
        if callback is not None and callback(opt.state.t, loss, opt):
            break
    return opt, losses
