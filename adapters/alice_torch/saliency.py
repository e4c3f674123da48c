"""torch helpers for glass-aware pruning and quantization (``alice-ref prune``, ``quantize``).

Framework plumbing only; every formula is :mod:`alice_ref.maths.saliency` (R4). Here: a small
ReLU CNN for 8x8 digits (:func:`make_cnn`), Adam training with optional fixed masks
(:func:`train`), the prunable weights of a model (:func:`prunable`), global masks from scores
that ``torch.nn.utils.prune.custom_from_mask`` accepts (:func:`global_masks`,
:func:`apply_masks`), the symmetric uniform quantizer (:func:`quantize_step`,
:func:`quantize`), and loss/accuracy of a model at modified weights (:func:`loss_at`,
:func:`accuracy`).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch.func import functional_call
from torch.nn.utils import prune as torch_prune

__all__ = ["accuracy", "apply_masks", "global_masks", "loss_at", "make_cnn", "prunable",
           "quantize", "quantize_step", "train"]


def make_cnn(seed: int, channels=(8, 16), n_out: int = 10):
    """A small ReLU CNN for flat 8x8 digits: unflatten, conv-relu, conv-relu, avgpool, linear.

    torch's global random state is left as it was.

    Args:
        seed: seed of the initialisation.
        channels: output channels of the two 3x3 convolutions (padding 1).
        n_out: classes.

    Returns:
        A ``torch.nn.Sequential`` with modules 'unflat', 'conv1', 'relu1', 'conv2', 'relu2',
        'pool', 'flat', 'fc'.

    Example:
        >>> import torch
        >>> m = make_cnn(0)
        >>> tuple(m(torch.zeros(2, 64)).shape), [n for n, _ in prunable(m)]
        ((2, 10), ['conv1', 'conv2', 'fc'])
    """
    c1, c2 = (int(c) for c in channels)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return torch.nn.Sequential(OrderedDict([
            ("unflat", torch.nn.Unflatten(1, (1, 8, 8))),
            ("conv1", torch.nn.Conv2d(1, c1, 3, padding=1)), ("relu1", torch.nn.ReLU()),
            ("conv2", torch.nn.Conv2d(c1, c2, 3, padding=1)), ("relu2", torch.nn.ReLU()),
            ("pool", torch.nn.AvgPool2d(2)), ("flat", torch.nn.Flatten()),
            ("fc", torch.nn.Linear(c2 * 16, n_out))]))


def prunable(model) -> list:
    """(name, module) of every Linear and Conv layer, in order: their ``weight`` is pruned.

    Args:
        model: a torch.nn.Module.

    Returns:
        A list of (module name, module).

    Example:
        >>> import torch
        >>> [n for n, _ in prunable(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU()))]
        ['0']
    """
    kinds = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    return [(n, m) for n, m in model.named_modules() if isinstance(m, kinds)]


def train(model, X, y, steps: int, lr: float = 1e-2, batch: int = 64, seed: int = 0,
          masks: dict | None = None, callback=None):
    """Adam minibatch training of ``model`` in place (cross-entropy); returns the model.

    With ``masks`` (module name -> 0/1 tensor) the masks are attached with
    ``torch.nn.utils.prune.custom_from_mask`` for the training and made permanent afterwards
    (``prune.remove``), so pruned weights stay exactly zero.

    Args:
        model: the model (modified).
        X: inputs. y: integer labels.
        steps: Adam steps.
        lr: learning rate.
        batch: minibatch size (drawn with replacement from a seeded generator).
        seed: seed of the minibatches.
        masks: optional masks of :func:`global_masks`.
        callback: ``callback(step)`` after each step.

    Returns:
        The model.

    Example:
        A masked weight stays zero:

        >>> import torch
        >>> m = torch.nn.Linear(3, 2)
        >>> mask = {"": torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])}
        >>> _ = train(m, torch.randn(8, 3), torch.tensor([0, 1] * 4), 3, masks=mask)
        >>> float(m.weight[0, 1].detach()) == 0.0
        True
    """
    mods = dict(model.named_modules())
    if masks:
        apply_masks(model, masks)
    gen = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for t in range(int(steps)):
        idx = torch.randint(len(y), (min(int(batch), len(y)),), generator=gen)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
        opt.step()
        if callback is not None:
            callback(t + 1)
    if masks:
        for name in masks:
            torch_prune.remove(mods[name], "weight")
    return model


def global_masks(scores: dict, sparsity: float) -> dict:
    """0/1 masks that remove the ``sparsity`` fraction of weights with the lowest scores, globally.

    Ties at the threshold are broken by position (exactly round(sparsity * n) weights go).
    The masks fit ``torch.nn.utils.prune.custom_from_mask(module, "weight", mask)``.

    Args:
        scores: module name -> score tensor of the weight's shape (larger = keep).
        sparsity: fraction removed, in [0, 1].

    Returns:
        module name -> float mask (1 keep, 0 prune), on the scores' devices.

    Raises:
        ValueError: sparsity outside [0, 1].

    Example:
        Half of four weights, the two smallest scores:

        >>> import torch
        >>> global_masks({"a": torch.tensor([3.0, 1.0]), "b": torch.tensor([0.5, 2.0])}, 0.5)
        {'a': tensor([1., 0.]), 'b': tensor([0., 1.])}
    """
    if not 0.0 <= float(sparsity) <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity!r}")
    names = list(scores)
    flat = torch.cat([scores[n].detach().reshape(-1).double().cpu() for n in names])
    k = int(round(float(sparsity) * flat.numel()))
    keep = torch.ones(flat.numel(), dtype=torch.float64)
    if k:
        keep[torch.argsort(flat, stable=True)[:k]] = 0.0
    out, off = {}, 0
    for n in names:
        s = scores[n]
        m = keep[off:off + s.numel()].reshape(s.shape)
        out[n] = m.to(device=s.device, dtype=s.dtype if s.is_floating_point() else torch.float32)
        off += s.numel()
    return out


def apply_masks(model, masks: dict):
    """Attach masks with ``torch.nn.utils.prune.custom_from_mask`` (weight = weight_orig * mask).

    Args:
        model: the model (modified).
        masks: module name -> mask of the module's weight shape.

    Returns:
        The model.

    Example:
        >>> import torch
        >>> m = torch.nn.Sequential(torch.nn.Linear(2, 1))
        >>> _ = apply_masks(m, {"0": torch.tensor([[0.0, 1.0]])})
        >>> float(m[0].weight[0, 0].detach()) == 0.0, hasattr(m[0], "weight_orig")
        (True, True)
    """
    mods = dict(model.named_modules())
    for name, mask in masks.items():
        w = mods[name].weight
        torch_prune.custom_from_mask(mods[name], "weight", mask.to(device=w.device,
                                                                   dtype=w.dtype))
    return model


def quantize_step(w, bits: int) -> float:
    """Grid step of the symmetric uniform quantizer: D = max|w| / (2^(bits-1) - 1).

    The grid is D k for integers |k| <= 2^(bits-1) - 1 (2^bits - 1 levels, zero included), so
    no weight is clipped.

    Args:
        w: the weight tensor.
        bits: bits per weight (>= 2).

    Returns:
        D as a float.

    Raises:
        ValueError: bits < 2.

    Example:
        >>> import torch
        >>> quantize_step(torch.tensor([0.5, -3.0]), 3)
        1.0
    """
    if int(bits) < 2:
        raise ValueError(f"bits must be >= 2, got {bits!r}")
    return float(w.detach().abs().max()) / (2 ** (int(bits) - 1) - 1)


def quantize(w, bits: int):
    """w rounded to the grid of :func:`quantize_step` (round to nearest).

    Args:
        w: the weight tensor.
        bits: bits per weight (>= 2).

    Returns:
        The rounded tensor.

    Example:
        >>> import torch
        >>> quantize(torch.tensor([0.4, 0.6, -3.0]), 3).tolist()
        [0.0, 1.0, -3.0]
    """
    d = quantize_step(w, bits)
    return w if d == 0 else torch.round(w / d) * d


def loss_at(model, X, y, replace: dict | None = None) -> float:
    """Mean cross-entropy of ``model`` on (X, y), with some parameters replaced (no grad).

    Args:
        model: the model (not modified).
        X: inputs. y: labels.
        replace: parameter name -> tensor to use instead (e.g. a pruned 'fc1.weight').

    Returns:
        The loss as a float.

    Example:
        Zeroing every weight and bias of a linear model gives log(classes):

        >>> import math, torch
        >>> m = torch.nn.Linear(3, 4)
        >>> z = {k: torch.zeros_like(v) for k, v in m.named_parameters()}
        >>> round(loss_at(m, torch.randn(5, 3), torch.zeros(5, dtype=torch.long), z), 6)
        1.386294
    """
    params = dict(model.named_parameters())
    if replace:
        params.update(replace)
    with torch.no_grad():
        out = functional_call(model, params, (X,))
        return float(torch.nn.functional.cross_entropy(out, y))


def accuracy(model, X, y, replace: dict | None = None) -> float:
    """Fraction of (X, y) classified correctly, with some parameters replaced (no grad).

    Args:
        model: the model. X: inputs. y: labels.
        replace: parameter name -> tensor to use instead.

    Returns:
        The accuracy in [0, 1].

    Example:
        >>> import torch
        >>> m = torch.nn.Linear(2, 2, bias=False)
        >>> accuracy(m, torch.eye(2), torch.tensor([0, 1]), {"weight": torch.eye(2)})
        1.0
    """
    params = dict(model.named_parameters())
    if replace:
        params.update(replace)
    with torch.no_grad():
        pred = functional_call(model, params, (X,)).argmax(dim=1)
    return float((pred == y).double().mean())

