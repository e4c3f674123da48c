"""alice_torch: the Alice optimiser (arXiv 2411.16914) as a ``torch.optim.Optimizer``.

A drop-in replacement for the official ``alice.Alice`` (sandialabs/alice, Alice 1.1). All the
mathematics comes from :mod:`alice_ref`; this package only turns PyTorch parameters, gradients,
closures, random generators and checkpoints into calls of the core. See docs/torch.md.

Layout: ``optimizer`` (the class :class:`Alice`: validates and gathers), ``_batch`` (the one
batch orchestration and :class:`NonFiniteGradientError`), ``_strategies`` (generic and fused
implementations, and the choice between them), ``_groups`` (parameter groups, their configs
and state), ``_numerics`` (torch's sqrt hook, the state dtype rule, finiteness checks),
``_checkpoint`` (state-dict checks), ``problems`` (diagnostics of torch models).
"""

from .optimizer import Alice, NonFiniteGradientError

__all__ = ["Alice", "NonFiniteGradientError"]
