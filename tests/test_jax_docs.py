"""The training loop shown in docs/jax.md (and the README) runs and trains."""

import pathlib
import re

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("optax")
import jax.numpy as jnp  # noqa: E402

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "jax.md"


def test_docs_training_loop_runs():
    block = re.search(r"## Training loop\s+```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(256, 4)).astype(np.float32)
    Y = X @ np.array([1.0, -2.0, 0.5, 3.0], np.float32)

    def loss_fn(p, batch):
        x, y = batch
        return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)

    ns = {"params": {"w": jnp.zeros(4, jnp.float32), "b": jnp.zeros((), jnp.float32)},
          "loss_fn": loss_fn,
          "batches": [(X[i:i + 32], Y[i:i + 32]) for i in range(0, 256, 32)] * 25}
    exec(compile(block, str(DOC), "exec"), ns)
    final = ns["final"]
    whole = (jnp.asarray(X), jnp.asarray(Y))
    assert ns["state"].count == 200 and int(ns["state"].skipped) == 0
    # with lr = 1e-3, mu moves at most phi * lr_max = 2e-4 per batch: a modest decrease
    start = float(loss_fn({"w": jnp.zeros(4), "b": 0.0}, whole))
    assert float(loss_fn(final, whole)) < 0.98 * start
