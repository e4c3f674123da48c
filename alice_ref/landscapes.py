"""Synthetic loss landscapes with known truth (MATH.md, "How each result is verified").

All are seeded and NumPy-backed. ``loss`` and ``grad`` accept parameters of any array-API
namespace (leading batch dimensions allowed) and answer in the caller's namespace, device and
dtype; ``to(xp)`` returns a copy whose truth attributes (``rho``, ``hess_diag``, ``hessian``)
live in ``xp``.
"""

from __future__ import annotations

import copy

import numpy as np

from ._xp import array_namespace, device, is_array_api_obj, to_numpy

__all__ = ["SeparableGlass", "Quadratic", "ReluTeacherStudent"]


def _vec(name, value, n):
    a = np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)).copy()
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite")
    return a


class _Landscape:
    _truth: tuple[str, ...] = ()

    def _io(self, theta):
        """(float64 NumPy view of theta, function mapping a NumPy result back to theta's kind)."""
        if not is_array_api_obj(theta):
            return np.asarray(theta, dtype=np.float64), lambda a: a
        x = np.asarray(to_numpy(theta), dtype=np.float64)
        if x.shape[-1:] != (self.n,):
            raise ValueError(f"theta must have last dimension {self.n}, got shape {x.shape}")
        xp, dev, dt = array_namespace(theta), device(theta), theta.dtype
        return x, lambda a: xp.asarray(np.asarray(a), dtype=dt, device=dev)

    def loss(self, theta):
        """L(theta), shape theta.shape[:-1]."""
        x, back = self._io(theta)
        return back(self._loss(x))

    def grad(self, theta):
        """g(theta) = grad L(theta), shape of theta."""
        x, back = self._io(theta)
        return back(self._grad(x))

    def to(self, xp):
        """A copy whose truth arrays live in namespace ``xp`` (float64)."""
        other = copy.copy(self)
        for name in self._truth:
            setattr(other, name, xp.asarray(getattr(self, name)))
        return other


class SeparableGlass(_Landscape):
    """L(theta) = sum_i [b_i theta_i + h_i theta_i^2 / 2 + sum_k beta_ik relu(theta_i - c_ik)].

    Boundaries c_ik are a Poisson process of rate ``lam_i`` on ``box``; jumps beta_ik are i.i.d.
    zero-mean with variance ``s_i^2`` ('gaussian' or 'rademacher' = +-s_i). Truth (R1):
    glass density rho_i = lam_i s_i^2 and Hessian diagonal h_i. Outside the box there is no glass.
    """

    _truth = ("rho", "hess_diag", "b")

    def __init__(self, n=8, *, lam=100.0, s=1.0, h=0.0, b=0.0, box=(-5.0, 5.0),
                 jumps="gaussian", seed=0):
        if int(n) < 1:
            raise ValueError(f"n must be >= 1, got {n!r}")
        if jumps not in ("gaussian", "rademacher"):
            raise ValueError(f"jumps must be 'gaussian' or 'rademacher', got {jumps!r}")
        lo, hi = (float(box[0]), float(box[1]))
        if not hi > lo:
            raise ValueError(f"box must be (lo, hi) with hi > lo, got {box!r}")
        self.n, self.box, self.jumps = int(n), (lo, hi), jumps
        self.lam, self.s = _vec("lam", lam, self.n), _vec("s", s, self.n)
        if np.any(self.lam < 0) or np.any(self.s < 0):
            raise ValueError("lam and s must be >= 0")
        self.hess_diag, self.b = _vec("h", h, self.n), _vec("b", b, self.n)
        self.rho = self.lam * self.s**2
        rng = np.random.default_rng(seed)
        counts = rng.poisson(self.lam * (hi - lo))
        width = hi - lo
        keys, jumps_all, pos_all = [], [], []
        for i, k in enumerate(counts):
            c = np.sort(rng.uniform(lo, hi, size=k))
            if jumps == "gaussian":
                beta = rng.normal(0.0, self.s[i], size=k)
            else:
                beta = self.s[i] * rng.choice([-1.0, 1.0], size=k)
            keys.append(i * width + (c - lo))
            jumps_all.append(beta)
            pos_all.append(c)
        self._keys = np.concatenate(keys) if keys else np.zeros(0)
        beta = np.concatenate(jumps_all) if jumps_all else np.zeros(0)
        pos = np.concatenate(pos_all) if pos_all else np.zeros(0)
        self._start = np.concatenate([[0], np.cumsum(counts)])
        self._S1 = np.concatenate([[0.0], np.cumsum(beta)])
        self._S2 = np.concatenate([[0.0], np.cumsum(beta * pos)])
        self.n_boundaries = counts

    def _glass_sums(self, x):
        lo, hi = self.box
        width = hi - lo
        i = np.arange(self.n)
        q = i * width + np.clip(x - lo, 0.0, width)
        idx = np.searchsorted(self._keys, q, side="right")
        idx = np.clip(idx, self._start[:-1], self._start[1:])
        start = self._start[:-1]
        return self._S1[idx] - self._S1[start], self._S2[idx] - self._S2[start]

    def _loss(self, x):
        s1, s2 = self._glass_sums(x)
        per = self.b * x + 0.5 * self.hess_diag * x * x + (x * s1 - s2)
        return per.sum(axis=-1)

    def _grad(self, x):
        s1, _ = self._glass_sums(x)
        return self.b + self.hess_diag * x + s1

    def smooth_grad(self, theta):
        """Gradient of the smooth part b + h theta (the glass removed), in theta's namespace."""
        x, back = self._io(theta)
        return back(self.b + self.hess_diag * x)


class Quadratic(_Landscape):
    """L(theta) = theta^T A theta / 2 + b^T theta with A symmetric positive definite.

    Eigenvalues log-uniform in ``eig_range``; ``diagonal=True`` makes A diagonal. Truth: hessian
    A, hess_diag diag(A), rho = 0, minimiser -A^{-1} b.
    """

    _truth = ("hessian", "hess_diag", "rho", "b", "minimiser")

    def __init__(self, n=8, *, eig_range=(0.5, 5.0), diagonal=False, seed=0):
        if int(n) < 1:
            raise ValueError(f"n must be >= 1, got {n!r}")
        lo, hi = float(eig_range[0]), float(eig_range[1])
        if not 0 < lo <= hi:
            raise ValueError(f"eig_range must satisfy 0 < lo <= hi, got {eig_range!r}")
        self.n = int(n)
        rng = np.random.default_rng(seed)
        eig = np.exp(rng.uniform(np.log(lo), np.log(hi), size=self.n))
        if diagonal:
            A = np.diag(eig)
        else:
            Qm, _ = np.linalg.qr(rng.normal(size=(self.n, self.n)))
            A = (Qm * eig) @ Qm.T
            A = 0.5 * (A + A.T)
        self.hessian, self.b = A, rng.normal(size=self.n)
        self.hess_diag, self.rho = np.diag(A).copy(), np.zeros(self.n)
        self.minimiser = -np.linalg.solve(A, self.b)

    def _loss(self, x):
        return 0.5 * np.einsum("...i,ij,...j->...", x, self.hessian, x) + x @ self.b

    def _grad(self, x):
        return x @ self.hessian + self.b


class ReluTeacherStudent(_Landscape):
    """Mean squared error of a one-hidden-layer ReLU student against a random ReLU teacher.

    f(x) = v^T relu(W x + c) + d on ``n_samples`` fixed Gaussian inputs; the teacher has
    ``teacher_hidden`` units. Parameters flattened as (W, c, v, d): sizes
    (n_hidden * n_in, n_hidden, n_hidden, 1). Its glass is real and non-separable: each sample's
    ReLU kinks are hyperplanes in parameter space.
    """

    def __init__(self, n_in=6, n_hidden=12, *, teacher_hidden=8, n_samples=256, seed=0):
        self.n_in, self.n_hidden = int(n_in), int(n_hidden)
        rng = np.random.default_rng(seed)
        self.X = rng.normal(size=(int(n_samples), self.n_in))
        Wt = rng.normal(size=(int(teacher_hidden), self.n_in)) / np.sqrt(self.n_in)
        ct = 0.1 * rng.normal(size=int(teacher_hidden))
        vt = rng.normal(size=int(teacher_hidden)) / np.sqrt(teacher_hidden)
        self.y = np.maximum(self.X @ Wt.T + ct, 0.0) @ vt
        self.param_sizes = (self.n_hidden * self.n_in, self.n_hidden, self.n_hidden, 1)
        self.n = int(sum(self.param_sizes))

    def init_params(self, seed=1):
        """A random starting point (He-style scale), NumPy float64."""
        rng = np.random.default_rng(seed)
        W = rng.normal(size=(self.n_hidden, self.n_in)) * np.sqrt(2.0 / self.n_in)
        v = rng.normal(size=self.n_hidden) / np.sqrt(self.n_hidden)
        return np.concatenate([W.ravel(), np.zeros(self.n_hidden), v, [0.0]])

    def split(self, x):
        """Views (W, c, v, d) of a flat parameter vector (leading batch dims allowed)."""
        o = np.cumsum((0,) + self.param_sizes)
        W = x[..., o[0]:o[1]].reshape(x.shape[:-1] + (self.n_hidden, self.n_in))
        return W, x[..., o[1]:o[2]], x[..., o[2]:o[3]], x[..., o[3]]

    def _forward(self, x, idx):
        X = self.X if idx is None else self.X[idx]
        W, c, v, d = self.split(x)
        pre = np.einsum("...hi,si->...sh", W, X) + c[..., None, :]
        act = np.maximum(pre, 0.0)
        out = np.einsum("...sh,...h->...s", act, v) + d[..., None]
        y = self.y if idx is None else self.y[idx]
        return X, pre, act, out - y

    def _loss(self, x, idx=None):
        r = self._forward(x, idx)[3]
        return 0.5 * np.mean(r * r, axis=-1)

    def _grad(self, x, idx=None):
        X, pre, act, r = self._forward(x, idx)
        _, _, v, _ = self.split(x)
        m = r.shape[-1]
        gv = np.einsum("...s,...sh->...h", r, act) / m
        gd = r.mean(axis=-1)
        back = r[..., :, None] * v[..., None, :] * (pre > 0)  # (..., s, h)
        gW = np.einsum("...sh,si->...hi", back, X) / m
        gc = back.mean(axis=-2)
        return np.concatenate([gW.reshape(gW.shape[:-2] + (-1,)), gc, gv, gd[..., None]], axis=-1)

    def loss(self, theta, batch=None):
        """Loss on all samples, or on the sample indices ``batch``."""
        x, back = self._io(theta)
        return back(self._loss(x, batch))

    def grad(self, theta, batch=None):
        """Gradient on all samples, or on the sample indices ``batch``."""
        x, back = self._io(theta)
        return back(self._grad(x, batch))
