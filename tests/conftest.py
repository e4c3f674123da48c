"""Shared fixtures: the ``xp`` fixture runs a test on every available array-API backend.

numpy, array_api_strict, torch (via array_api_compat) and jax.numpy when installed; cupy only
when a CUDA device is present (otherwise its parameter is skipped with the reason).
"""

import importlib
import os

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def _try(name):
    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return None


def _cupy_usable():
    cp = _try("cupy")
    if cp is None:
        return None, "cupy not installed"
    try:
        if cp.cuda.runtime.getDeviceCount() < 1:
            return None, "no CUDA device"
        cp.zeros(1) + 1  # noqa: B018 - exercise the device
    except Exception as e:  # noqa: BLE001
        return None, f"cupy cannot use a GPU here: {type(e).__name__}"
    return cp, ""


def _backends():
    out = [pytest.param("numpy", id="numpy")]
    for name, mod in (("array_api_strict", "array_api_strict"),
                      ("torch", "torch"), ("jax", "jax")):
        out.append(pytest.param(name, id=name, marks=() if _try(mod) else pytest.mark.skip(
            reason=f"{mod} not installed")))
    return out


BACKENDS = _backends()


def load_namespace(name):
    """The array namespace for a backend name (with float64 enabled for JAX)."""
    if name == "numpy":
        import numpy
        return numpy
    if name == "array_api_strict":
        import array_api_strict
        return array_api_strict
    if name == "torch":
        import array_api_compat.torch
        return array_api_compat.torch
    if name == "jax":
        import jax
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        return jnp
    if name == "cupy":
        cp, why = _cupy_usable()
        if cp is None:
            pytest.skip(why)
        return cp
    raise ValueError(name)


@pytest.fixture(params=BACKENDS + [pytest.param("cupy", id="cupy")])
def xp(request):
    """An array-API namespace: numpy, array_api_strict, torch, jax.numpy, cupy (GPU only)."""
    return load_namespace(request.param)


@pytest.fixture(params=BACKENDS)
def xp_cpu(request):
    """Like ``xp`` without cupy (for tests whose cost is dominated by host work)."""
    return load_namespace(request.param)


@pytest.fixture
def torch_one_thread():
    """Tiny torch models: one intra-op thread is fastest and immune to a busy machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def interrupt_handler():
    """SIGUSR1 raises KeyboardInterrupt (as Ctrl-C would) for the interrupt tests."""
    import signal

    old = signal.signal(signal.SIGUSR1, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    yield
    signal.signal(signal.SIGUSR1, old)
