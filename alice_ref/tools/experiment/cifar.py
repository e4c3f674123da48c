"""CIFAR-10 from a local directory in the standard python-pickle batch format (no download).

The format of ``cifar-10-python.tar.gz`` unpacked: files ``data_batch_1`` ... ``data_batch_5``
and ``test_batch``, each a pickled dict with ``b'data'`` (uint8, N x 3072: 1024 red, 1024 green,
1024 blue values per image, row-major 32x32) and ``b'labels'`` (N ints in 0-9). The directory
may be the one holding the files or its parent holding ``cifar-10-batches-py/``. Any number of
``data_batch_*`` files is accepted (a test writes a tiny set with :func:`write_cifar_format`).
"""

from __future__ import annotations

import os
import pickle
import re

import numpy as np

__all__ = ["find_cifar_dir", "load_cifar10", "write_cifar_format"]


def find_cifar_dir(path: str) -> str:
    """The directory holding the batches: ``path`` or ``path/cifar-10-batches-py``.

    Raises:
        FileNotFoundError: neither holds ``test_batch`` and at least one ``data_batch_*``.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> write_cifar_format(d, n_train_batches=1, per_batch=2, n_test=2)
        >>> find_cifar_dir(d) == d
        True
    """
    for d in (path, os.path.join(path, "cifar-10-batches-py")):
        if os.path.isdir(d) and os.path.isfile(os.path.join(d, "test_batch")) and any(
                re.fullmatch(r"data_batch_\d+", f) for f in os.listdir(d)):
            return d
    raise FileNotFoundError(
        f"--data {path!r} holds no CIFAR-10 python batches (data_batch_1 ... and test_batch, "
        f"here or in cifar-10-batches-py/): unpack cifar-10-python.tar.gz there")


def _read(path):
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="bytes")
    data = np.asarray(d[b"data"], dtype=np.uint8)
    labels = np.asarray(d[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (data.shape[0],):
        raise ValueError(f"{path}: expected data N x 3072 and N labels, got {data.shape} and "
                         f"{labels.shape}")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(path: str):
    """The training and test sets as uint8 arrays N x 3 x 32 x 32 and int64 labels.

    Returns:
        (x_train, y_train, x_test, y_test).

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> write_cifar_format(d, n_train_batches=2, per_batch=3, n_test=4)
        >>> [a.shape for a in load_cifar10(d)]
        [(6, 3, 32, 32), (6,), (4, 3, 32, 32), (4,)]
    """
    d = find_cifar_dir(path)
    names = sorted((f for f in os.listdir(d) if re.fullmatch(r"data_batch_\d+", f)),
                   key=lambda f: int(f.rsplit("_", 1)[1]))
    parts = [_read(os.path.join(d, f)) for f in names]
    xtr = np.concatenate([p[0] for p in parts])
    ytr = np.concatenate([p[1] for p in parts])
    xte, yte = _read(os.path.join(d, "test_batch"))
    return xtr, ytr, xte, yte


def write_cifar_format(path: str, n_train_batches: int = 2, per_batch: int = 50,
                       n_test: int = 50, seed: int = 0) -> None:
    """Write a tiny CIFAR-format dataset (random images, labels cycling 0-9) into ``path``.

    For tests and trials of the presets: the same files and layout as the real data.
    """
    rng = np.random.default_rng(seed)
    os.makedirs(path, exist_ok=True)

    def dump(name, n, offset):
        d = {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
             b"labels": [int((offset + i) % 10) for i in range(n)],
             b"batch_label": name.encode()}
        with open(os.path.join(path, name), "wb") as f:
            pickle.dump(d, f)

    for k in range(n_train_batches):
        dump(f"data_batch_{k + 1}", per_batch, k * per_batch)
    dump("test_batch", n_test, 0)
