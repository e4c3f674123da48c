"""alice_torch: the Alice optimiser (arXiv 2411.16914) as a ``torch.optim.Optimizer``.

A drop-in replacement for the official ``alice.Alice`` (sandialabs/alice, Alice 1.1). All the
mathematics comes from :mod:`alice_ref`; this package only turns PyTorch parameters, gradients,
closures, random generators and checkpoints into calls of the core. See docs/torch.md.
"""

from .optimizer import Alice, NonFiniteGradientError

__all__ = ["Alice", "NonFiniteGradientError"]
