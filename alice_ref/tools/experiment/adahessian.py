"""AdaHessian (Yao et al., AAAI 2021), written here for the paper's T3 baseline.

pytorch_optimizer is not a dependency; this is the textbook update of the AdaHessian paper and
its reference code: per step one Hutchinson probe z (Rademacher) and the Hessian-vector product
Hz from the gradient's graph, D = |z * Hz| (for 4-D convolution kernels averaged over the
kernel's spatial positions), m <- b1 m + (1 - b1) g, v <- b2 v + (1 - b2) D^2, and
p <- p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t))^k + eps) with Hessian power k = 1.
Cost: 2 gradient evaluations per step (a gradient and one Hessian-vector product).
"""

from __future__ import annotations

from alice_ref.tools._tasks import need_torch

__all__ = ["make_adahessian"]


def make_adahessian(params, lr=0.15, betas=(0.9, 0.999), eps=1e-8, hessian_power=1.0,
                    generator=None):
    """An AdaHessian optimiser over ``params`` (closure: zero grads, loss,
    ``loss.backward(create_graph=True)``, return the loss).

    Example:
        On L = sum p^2 (g = 2p, |z Hz| = 2) the first step is lr g / 2 = lr p:

        >>> import torch
        >>> p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        >>> opt = make_adahessian([p], lr=0.1)
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = (p ** 2).sum()
        ...     loss.backward(create_graph=True)
        ...     return loss
        >>> _ = opt.step(closure)
        >>> [round(v, 6) for v in p.tolist()]
        [0.9, -1.8]
    """
    torch = need_torch()

    class AdaHessian(torch.optim.Optimizer):
        cost = 2

        def __init__(self):
            super().__init__(params, dict(lr=lr, betas=betas, eps=eps,
                                          hessian_power=hessian_power))
            self.generator = generator

        @torch.no_grad()
        def step(self, closure=None):
            loss = None
            if closure is not None:  # else the gradients (with their graph) are already there
                with torch.enable_grad():
                    loss = closure()
            ps = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
            zs = [(torch.randint(0, 2, p.shape, generator=self.generator, dtype=p.dtype) * 2 - 1)
                  for p in ps]
            with torch.enable_grad():
                hvs = torch.autograd.grad([p.grad for p in ps], ps, grad_outputs=zs)
            diag = {}
            for p, z, hv in zip(ps, zs, hvs):
                d = (z * hv).abs()
                if d.dim() == 4:
                    d = d.mean(dim=[2, 3], keepdim=True).expand_as(d)
                diag[p] = d
            for group in self.param_groups:
                b1, b2 = group["betas"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    st = self.state[p]
                    if not st:
                        st["step"] = 0
                        st["m"] = torch.zeros_like(p)
                        st["v"] = torch.zeros_like(p)
                    st["step"] += 1
                    t = st["step"]
                    g = p.grad.detach()
                    st["m"].mul_(b1).add_(g, alpha=1 - b1)
                    st["v"].mul_(b2).addcmul_(diag[p], diag[p], value=1 - b2)
                    denom = (st["v"] / (1 - b2 ** t)).sqrt() ** group["hessian_power"]
                    p.add_(st["m"] / (1 - b1 ** t) / (denom + group["eps"]), alpha=-group["lr"])
            for p in ps:  # break the grad <-> graph cycle of create_graph=True
                p.grad = None
            return loss

    return AdaHessian()
