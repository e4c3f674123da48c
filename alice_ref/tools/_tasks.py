"""Tasks shared by ``alice-ref probe`` and ``alice-ref train``: the digits data and MLP, exit codes.

The ``digits`` task is scikit-learn's bundled 8x8 digits (real data, no download) with a
one-hidden-layer ReLU MLP in torch; torch and scikit-learn are imported lazily, and a missing one
raises :class:`MissingDependency` (exit code 3) naming the extra to install. The ``default`` task
(the NumPy ReluTeacherStudent landscape) needs nothing beyond NumPy.

Exit codes: 0 done; 1 the run failed; 2 bad arguments; 3 an optional dependency is missing.
"""

from __future__ import annotations

import numpy as np

__all__ = ["EXIT_FAIL", "EXIT_MISSING", "EXIT_OK", "EXIT_USAGE", "MissingDependency",
           "load_digits_data", "make_mlp", "need_torch", "cli_torch", "CLI_THREADS_ENV"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_MISSING = 0, 1, 2, 3


class MissingDependency(RuntimeError):
    """An optional package needed by the chosen task is not installed (exit code 3).

    Example:
        A RuntimeError whose message says what to install:

        >>> issubclass(MissingDependency, RuntimeError)
        True
    """



def need_torch():
    """torch, imported now, or :class:`MissingDependency` naming the extra.

    Example:
        The module itself (this environment has torch):

        >>> need_torch().__name__
        'torch'
    """
    try:
        import torch
    except ImportError as e:
        raise MissingDependency("this task needs torch: pip install 'alice-ref[torch]'") from e
    return torch



#: Environment variable that sets the torch threads of the CLI's own runs (default 1).
CLI_THREADS_ENV = "ALICE_REF_THREADS"


def cli_torch():
    """torch for the CLI's own runs (:func:`need_torch`), with its intra-op threads set to
    ``$ALICE_REF_THREADS``, else ``$OMP_NUM_THREADS``, else 1.

    One thread by default: the digits models are tiny (a 64-64-10 MLP), so torch's threads
    only add synchronisation, and on a loaded machine its default (one per core) made
    ``alice-ref train --task digits`` take 1,798 s against 47 s with one thread.

    Example:
        >>> import os
        >>> t = cli_torch()
        >>> t.get_num_threads() == int(os.environ.get(CLI_THREADS_ENV)
        ...                             or os.environ.get("OMP_NUM_THREADS") or 1)
        True
    """
    import os

    torch = need_torch()
    raw = os.environ.get(CLI_THREADS_ENV) or os.environ.get("OMP_NUM_THREADS") or "1"
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise MissingDependency(f"{CLI_THREADS_ENV} (or OMP_NUM_THREADS) must be an integer "
                                f">= 1, got {raw!r}")
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return torch


def load_digits_data(split_seed: int = 0, test_fraction: float = 0.2):
    """scikit-learn's bundled 8x8 digits (1797 images, no download) as torch tensors.

    Pixels scaled to [0, 1]; a stratified split fixed by ``split_seed``.

    Args:
        split_seed: seed of the train/test split.
        test_fraction: fraction of each class held out.

    Returns:
        (X_train, y_train, X_test, y_test) with float32 inputs of 64 pixels and int64 labels.

    Raises:
        MissingDependency: torch or scikit-learn is not installed.

    Example:
        20% of each class held out, 1797 images in all (needs the data extra, so not run
        by the doctests):

        >>> Xtr, ytr, Xte, yte = load_digits_data()  # doctest: +SKIP
        >>> len(Xtr) + len(Xte), tuple(Xtr.shape[1:]), Xtr.dtype  # doctest: +SKIP
        (1797, (64,), torch.float32)
    """
    torch = need_torch()
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise MissingDependency("--task digits needs scikit-learn: pip install "
                                "'alice-ref[data]'") from e
    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32) / 16.0
    rng = np.random.default_rng(split_seed)
    test = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        test[rng.choice(idx, round(test_fraction * len(idx)), replace=False)] = True
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
    return t(X[~test]), t(y[~test].astype(np.int64)), t(X[test]), t(y[test].astype(np.int64))


def make_mlp(seed: int, hidden: int = 64, n_in: int = 64, n_out: int = 10):
    """A one-hidden-layer ReLU MLP (fc1 -> ReLU -> fc2), float32, initialised from ``seed``.

    torch's global random state is left as it was.

    Args:
        seed: seed of the initialisation.
        hidden: hidden units.
        n_in: inputs.
        n_out: outputs.

    Returns:
        A ``torch.nn.Sequential`` with modules 'fc1', 'relu', 'fc2'.

    Raises:
        MissingDependency: torch is not installed.

    Example:
        The same seed gives the same model:

        >>> import torch
        >>> m = make_mlp(0, hidden=3, n_in=2, n_out=1)
        >>> [tuple(p.shape) for p in m.parameters()]
        [(3, 2), (3,), (1, 3), (1,)]
        >>> torch.equal(m.fc1.weight, make_mlp(0, hidden=3, n_in=2, n_out=1).fc1.weight)
        True
    """
    torch = need_torch()
    from collections import OrderedDict

    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
        torch.manual_seed(int(seed))
        model = torch.nn.Sequential(OrderedDict([
            ("fc1", torch.nn.Linear(n_in, hidden)), ("relu", torch.nn.ReLU()),
            ("fc2", torch.nn.Linear(hidden, n_out))]))
    return model

