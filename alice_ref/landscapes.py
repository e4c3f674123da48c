"""Synthetic loss landscapes with known truth (docs/spec/math.md#how-each-result-is-verified).

All are seeded and NumPy-backed. ``loss`` and ``grad`` accept parameters of any array-API
namespace (leading batch dimensions allowed) and answer in the caller's namespace, device and
dtype; ``to(xp)`` returns a copy whose truth attributes (``rho``, ``hess_diag``, ``hessian``)
live in ``xp``.
"""

from __future__ import annotations

import copy

import numpy as np

from alice_ref._xp import array_namespace, device, is_array_api_obj, to_numpy
from alice_ref.checks import check_count

__all__ = ["SeparableGlass", "Quadratic", "ReluTeacherStudent"]


def _vec(name, value, n, nonnegative=False):
    """A float64 vector of n values from a scalar or n values; ValueError naming ``name``."""
    v = np.asarray(value, dtype=np.float64)
    if v.ndim > 1 or v.size not in (1, n):
        raise ValueError(f"{name} must be a scalar or {n} values, got shape {v.shape}")
    a = np.broadcast_to(v.reshape(-1), (n,)).copy()
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if nonnegative and np.any(a < 0):
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return a


def _dim(n) -> int:
    """The dimension n as an int >= 1; ValueError naming n otherwise."""
    return check_count("n", n, lo=1)


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
        """The loss L(theta), of shape theta.shape[:-1] (leading batch dimensions allowed).

        Args:
            theta: parameters with last dimension n: an array of any array-API namespace (the
                result has its namespace, device and dtype) or a plain sequence (NumPy float64).

        Returns:
            L(theta), one value per point.

        Raises:
            ValueError: an array whose last dimension is not n.

        Example:
            A quadratic's least value is b^T theta* / 2 at theta* = -A^{-1} b; the rows of a
            batch are separate points:

            >>> import numpy as np
            >>> q = Quadratic(3, seed=0)
            >>> bool(np.isclose(q.loss(q.minimiser), 0.5 * q.b @ q.minimiser))
            True
            >>> q.loss(np.zeros((4, 3))).tolist()
            [0.0, 0.0, 0.0, 0.0]
        """
        x, back = self._io(theta)
        return back(self._loss(x))

    def grad(self, theta):
        """The gradient g(theta) = grad L(theta), of the shape of theta.

        Args:
            theta: parameters with last dimension n (leading batch dimensions allowed): an
                array of any array-API namespace (the result has its namespace, device and
                dtype) or a plain sequence (NumPy float64).

        Returns:
            g(theta).

        Raises:
            ValueError: an array whose last dimension is not n.

        Example:
            A quadratic's gradient A theta + b vanishes at its minimiser and is b at 0:

            >>> import numpy as np
            >>> q = Quadratic(3, seed=0)
            >>> bool(np.allclose(q.grad(q.minimiser), 0.0))
            True
            >>> g = q.grad(np.zeros(3, dtype=np.float32))
            >>> g.dtype, bool(np.allclose(g, q.b, atol=1e-6))
            (dtype('float32'), True)
            >>> q.grad(np.zeros(2))
            Traceback (most recent call last):
            ...
            ValueError: theta must have last dimension 3, got shape (2,)
        """
        x, back = self._io(theta)
        return back(self._grad(x))

    def to(self, xp):
        """A shallow copy whose truth arrays live in namespace ``xp`` (float64).

        The truth attributes (those of rho, hess_diag, hessian, b, minimiser that the landscape
        has) become ``xp.asarray`` arrays; ``loss`` and ``grad`` are unchanged (they answer in
        the caller's namespace anyway). ``self`` is not modified.

        Args:
            xp: an array-API namespace (a module such as ``array_api_compat.numpy``).

        Returns:
            The copy.

        Example:
            The copy's truth is the original's, rho = lam s^2:

            >>> import array_api_compat.numpy as xp
            >>> land = SeparableGlass(2, lam=4.0, s=0.5)
            >>> other = land.to(xp)
            >>> other is land, other.rho.tolist(), other.n
            (False, [1.0, 1.0], 2)
        """
        other = copy.copy(self)
        for name in self._truth:
            setattr(other, name, xp.asarray(getattr(self, name)))
        return other


class SeparableGlass(_Landscape):
    """Separable glass with known glass density and Hessian diagonal (R1, separable case).

    L(theta) = sum_i [b_i theta_i + h_i theta_i^2 / 2 + sum_k beta_ik relu(theta_i - c_ik)].
    The boundaries c_ik are a Poisson process of rate lam_i on ``box``; the jumps beta_ik are
    i.i.d. zero-mean with variance s_i^2 (Gaussian, or +-s_i for 'rademacher'). The gradient
    b_i + h_i theta_i + sum_{c_ik <= theta_i} beta_ik jumps by beta_ik at each boundary, so its
    glass part is a random walk in theta_i. Truth (R1): glass density rho_i = lam_i s_i^2 and
    Hessian diagonal h_i. Outside the box there are no boundaries (the glass part of the
    gradient is constant there: 0 below the box, the sum of all jumps above it). ``loss``,
    ``grad`` and ``to`` are described in the module docstring.

    Args:
        n: the dimension (>= 1).
        lam: boundary rate lam_i per unit length (a scalar or n values, >= 0).
        s: jump standard deviation s_i (a scalar or n values, >= 0).
        h: Hessian diagonal h_i (a scalar or n values).
        b: linear coefficient b_i (a scalar or n values).
        box: (lo, hi) with hi > lo, the interval that holds the boundaries.
        jumps: 'gaussian' or 'rademacher'.
        seed: seed of the NumPy Generator that draws the boundaries and jumps.

    Attributes:
        rho: the true glass density lam s^2 (float64, n values).
        hess_diag: the true Hessian diagonal h.
        b: the linear coefficients.
        n_boundaries: the number of boundaries drawn for each coordinate.

    Raises:
        ValueError: n < 1, an unknown ``jumps``, hi <= lo, a non-finite or wrongly sized lam,
            s, h or b, or a negative lam or s.

    Example:
        With +-s jumps the glass part of the gradient at the top of the box is s times a sum of
        n_boundaries signs, so it has their parity; below the box there is no glass:

        >>> import numpy as np
        >>> land = SeparableGlass(3, lam=50.0, s=2.0, h=1.0, jumps="rademacher", seed=0)
        >>> land.rho.tolist()  # lam s^2
        [200.0, 200.0, 200.0]
        >>> top, n = np.full(3, 5.0), land.n_boundaries
        >>> k = (land.grad(top) - land.smooth_grad(top)) / 2.0  # one +-1 per boundary
        >>> bool(np.all(np.abs(k) <= n) and np.all((k - n) % 2 == 0))
        True
        >>> land.grad(np.full(3, -6.0)).tolist(), float(land.loss(np.full(3, -6.0)))
        ([-6.0, -6.0, -6.0], 54.0)
    """

    _truth = ("rho", "hess_diag", "b")

    def __init__(self, n=8, *, lam=100.0, s=1.0, h=0.0, b=0.0, box=(-5.0, 5.0),
                 jumps="gaussian", seed=0):
        n = _dim(n)
        if jumps not in ("gaussian", "rademacher"):
            raise ValueError(f"jumps must be 'gaussian' or 'rademacher', got {jumps!r}")
        lo, hi = (float(box[0]), float(box[1]))
        if not hi > lo:
            raise ValueError(f"box must be (lo, hi) with hi > lo, got {box!r}")
        self.n, self.box, self.jumps = n, (lo, hi), jumps
        self.lam = _vec("lam", lam, self.n, nonnegative=True)
        self.s = _vec("s", s, self.n, nonnegative=True)
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
        """Gradient b + h theta of the smooth part (the glass removed), in theta's namespace.

        Args:
            theta: parameters with last dimension n (leading batch dimensions allowed).

        Returns:
            b + h theta, of the shape of theta.

        Raises:
            ValueError: an array whose last dimension is not n.

        Example:
            A straight line of slope h through b:

            >>> import numpy as np
            >>> SeparableGlass(2, h=3.0, b=1.0).smooth_grad(np.array([0.0, 2.0])).tolist()
            [1.0, 7.0]
        """
        x, back = self._io(theta)
        return back(self.b + self.hess_diag * x)


class Quadratic(_Landscape):
    """Quadratic with known Hessian and minimiser, and no glass (R1's smooth case).

    L(theta) = theta^T A theta / 2 + b^T theta, A symmetric positive definite with eigenvalues
    log-uniform in ``eig_range`` and random orthogonal eigenvectors (A diagonal when
    ``diagonal``), b standard normal. Truth: Hessian A, its diagonal, rho = 0 and the
    minimiser -A^{-1} b. ``loss``, ``grad`` and ``to`` are described in the module docstring.

    Args:
        n: the dimension (>= 1).
        eig_range: (lo, hi) with 0 < lo <= hi.
        diagonal: make A diagonal.
        seed: seed of the NumPy Generator that draws A and b.

    Attributes:
        hessian: A (n x n, float64).
        hess_diag: diag(A).
        rho: zeros (no glass).
        b: the linear coefficients.
        minimiser: -A^{-1} b.

    Raises:
        ValueError: n < 1, or eig_range without 0 < lo <= hi.

    Example:
        The eigenvalues lie in eig_range, and the minimiser is a stationary point:

        >>> import numpy as np
        >>> q = Quadratic(4, eig_range=(0.5, 5.0), seed=0)
        >>> ev = np.linalg.eigvalsh(q.hessian)
        >>> bool(ev.min() > 0.5 - 1e-9 and ev.max() < 5.0 + 1e-9)
        True
        >>> bool(np.allclose(q.grad(q.minimiser), 0.0))
        True
        >>> bool(Quadratic(2, diagonal=True).hessian[0, 1] == 0.0)
        True
    """

    _truth = ("hessian", "hess_diag", "rho", "b", "minimiser")

    def __init__(self, n=8, *, eig_range=(0.5, 5.0), diagonal=False, seed=0):
        n = _dim(n)
        lo, hi = float(eig_range[0]), float(eig_range[1])
        if not 0 < lo <= hi:
            raise ValueError(f"eig_range must satisfy 0 < lo <= hi, got {eig_range!r}")
        self.n = n
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

    L(theta) = (1/2) mean_s (f(x_s) - y_s)^2 with f(x) = v^T relu(W x + c) + d on
    ``n_samples`` fixed Gaussian inputs x_s, y_s the outputs of a teacher with
    ``teacher_hidden`` units. The parameters are flattened as (W, c, v, d), of sizes
    (n_hidden n_in, n_hidden, n_hidden, 1). Its glass is real and non-separable (R1's general
    case): each sample's ReLU kinks are hyperplanes in parameter space; no true rho is known.
    The sizes are converted with int() and not otherwise checked.

    Args:
        n_in: the input dimension.
        n_hidden: the student's hidden units.
        teacher_hidden: the teacher's hidden units.
        n_samples: the number of fixed inputs.
        seed: seed of the NumPy Generator that draws the inputs and the teacher.

    Attributes:
        X: the inputs (n_samples x n_in).
        y: the teacher's outputs.
        param_sizes: the sizes of (W, c, v, d).
        n: the total number of parameters.

    Example:
        The analytic gradient matches central differences of the loss (a batch of n points):

        >>> import numpy as np
        >>> r = ReluTeacherStudent(n_in=3, n_hidden=4, n_samples=32)
        >>> r.param_sizes, r.n
        ((12, 4, 4, 1), 21)
        >>> x, e = r.init_params(), 1e-6 * np.eye(r.n)
        >>> fd = (r.loss(x + e) - r.loss(x - e)) / 2e-6
        >>> bool(np.allclose(fd, r.grad(x), atol=1e-6))
        True
    """

    def __init__(self, n_in=6, n_hidden=12, *, teacher_hidden=8, n_samples=256, seed=0):
        for name, v in (("n_in", n_in), ("n_hidden", n_hidden), ("teacher_hidden", teacher_hidden),
                        ("n_samples", n_samples)):
            check_count(name, v, lo=1)
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
        """A random starting point: He-scaled W, zero biases, NumPy float64.

        W_ij ~ N(0, 2/n_in), v_j ~ N(0, 1/n_hidden), c = 0 and d = 0.

        Args:
            seed: seed of its own NumPy Generator (independent of the landscape's).

        Returns:
            A flat float64 vector of length n.

        Example:
            The biases start at zero:

            >>> r = ReluTeacherStudent(n_in=3, n_hidden=4)
            >>> W, c, v, d = r.split(r.init_params())
            >>> W.shape, c.tolist(), float(d)
            ((4, 3), [0.0, 0.0, 0.0, 0.0], 0.0)
        """
        rng = np.random.default_rng(seed)
        W = rng.normal(size=(self.n_hidden, self.n_in)) * np.sqrt(2.0 / self.n_in)
        v = rng.normal(size=self.n_hidden) / np.sqrt(self.n_hidden)
        return np.concatenate([W.ravel(), np.zeros(self.n_hidden), v, [0.0]])

    def split(self, x):
        """Views (W, c, v, d) of a flat parameter vector (leading batch dimensions allowed).

        Args:
            x: a NumPy array with last dimension n (not checked).

        Returns:
            The tuple (W, c, v, d) with shapes (..., n_hidden, n_in), (..., n_hidden),
            (..., n_hidden) and (...).

        Example:
            A batch of five parameter vectors:

            >>> import numpy as np
            >>> r = ReluTeacherStudent(n_in=3, n_hidden=4)
            >>> [a.shape for a in r.split(np.zeros((5, r.n)))]
            [(5, 4, 3), (5, 4), (5, 4), (5,)]
        """
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
        """The loss on all samples, or on the sample indices ``batch`` (a minibatch).

        L_B(theta) = (1/2) mean over s in B of (f(x_s) - y_s)^2, of shape theta.shape[:-1].

        Args:
            theta: parameters with last dimension n: an array of any array-API namespace (the
                result has its namespace, device and dtype) or a plain sequence.
            batch: None for all samples, or an index array into the samples.

        Returns:
            L_B(theta).

        Raises:
            ValueError: an array whose last dimension is not n.

        Example:
            The full loss is the mean of the losses of two halves:

            >>> import numpy as np
            >>> r = ReluTeacherStudent(n_samples=64)
            >>> x = r.init_params()
            >>> halves = r.loss(x, np.arange(32)) + r.loss(x, np.arange(32, 64))
            >>> bool(np.isclose(halves / 2, r.loss(x)))
            True
        """
        x, back = self._io(theta)
        return back(self._loss(x, batch))

    def grad(self, theta, batch=None):
        """The gradient on all samples, or on the sample indices ``batch`` (a minibatch).

        grad L_B(theta), of the shape of theta (see :meth:`loss`).

        Args:
            theta: parameters with last dimension n: an array of any array-API namespace (the
                result has its namespace, device and dtype) or a plain sequence.
            batch: None for all samples, or an index array into the samples.

        Returns:
            grad L_B(theta).

        Raises:
            ValueError: an array whose last dimension is not n.

        Example:
            The full gradient is the mean of the gradients of two halves:

            >>> import numpy as np
            >>> r = ReluTeacherStudent(n_samples=64)
            >>> x = r.init_params()
            >>> halves = r.grad(x, np.arange(32)) + r.grad(x, np.arange(32, 64))
            >>> bool(np.allclose(halves / 2, r.grad(x)))
            True
        """
        x, back = self._io(theta)
        return back(self._grad(x, batch))
