"""The network of the paper's experiment scripts: a ResNet-18 with per-channel masks.

As the official ``experiments/resnet18/`` scripts build it: BasicBlocks [2, 2, 2, 2] of widths
64-128-256-512, a 3x3 stem without max-pool, bias-free convolutions, a learnable per-channel
"mask" multiplier (initialised to 1) after the stem's and every block's convolutions, and batch
norm after ``relu(mask(conv) + shortcut)``. Parameters are named by layer group (``stem``,
``layer1`` ... ``layer4``, ``linear``): the groups of the power-law preset.

:func:`resnet18_masked` is the real-scale network; :func:`small_resnet_masked` the same
architecture at reduced scale (one block per stage, narrower, for the 8x8 digits data).
torch is imported lazily (extra ``torch``).
"""

from __future__ import annotations

from alice_ref.tools._tasks import need_torch

__all__ = ["GROUPS", "resnet18_masked", "small_resnet_masked", "layer_group"]

GROUPS = ("stem", "layer1", "layer2", "layer3", "layer4", "linear")


def layer_group(name: str) -> str:
    """The layer group of a parameter name ('layer2.0.conv1.weight' -> 'layer2').

    Example:
        >>> layer_group("layer2.0.conv1.weight"), layer_group("stem.mask.scale")
        ('layer2', 'stem')
    """
    return name.split(".", 1)[0]


def _build(in_channels, num_classes, widths, blocks, seed):
    torch = need_torch()
    nn = torch.nn

    class Mask(nn.Module):
        """Learnable per-channel multiplier, initialised to 1."""

        def __init__(self, c):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1, c, 1, 1))

        def forward(self, x):
            return x * self.scale

    class Stem(nn.Module):
        def __init__(self, c_in, c):
            super().__init__()
            self.conv = nn.Conv2d(c_in, c, 3, padding=1, bias=False)
            self.mask = Mask(c)
            self.bn = nn.BatchNorm2d(c)

        def forward(self, x):
            return self.bn(torch.relu(self.mask(self.conv(x))))

    class BasicBlock(nn.Module):
        def __init__(self, c_in, c, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c, 3, stride=stride, padding=1, bias=False)
            self.mask1 = Mask(c)
            self.bn1 = nn.BatchNorm2d(c)
            self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.mask2 = Mask(c)
            self.bn2 = nn.BatchNorm2d(c)
            self.shortcut = (nn.Identity() if stride == 1 and c_in == c else
                             nn.Conv2d(c_in, c, 1, stride=stride, bias=False))

        def forward(self, x):
            h = self.bn1(torch.relu(self.mask1(self.conv1(x))))
            return self.bn2(torch.relu(self.mask2(self.conv2(h)) + self.shortcut(x)))

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = Stem(in_channels, widths[0])
            c = widths[0]
            for k, (w, n) in enumerate(zip(widths, blocks)):
                layers = []
                for j in range(n):
                    layers.append(BasicBlock(c, w, 2 if (j == 0 and k > 0) else 1))
                    c = w
                setattr(self, f"layer{k + 1}", nn.Sequential(*layers))
            self.linear = nn.Linear(c, num_classes)

        def forward(self, x):
            x = self.stem(x)
            for k in range(4):
                x = getattr(self, f"layer{k + 1}")(x)
            return self.linear(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))

    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
        torch.manual_seed(int(seed))
        return ResNet()


def resnet18_masked(seed: int = 0, num_classes: int = 10, in_channels: int = 3):
    """ResNet-18 of the experiment scripts (BasicBlock [2,2,2,2], widths 64-512, masks).

    Args:
        seed: the initialisation seed (torch's global RNG is left as it was).
        num_classes: outputs of the linear layer.
        in_channels: input channels (3 for CIFAR-10).

    Returns:
        A torch.nn.Module whose parameters are named by layer group.

    Example:
        Its parameters fall in six layer groups:

        >>> m = resnet18_masked()
        >>> sorted({layer_group(n) for n, _ in m.named_parameters()})
        ['layer1', 'layer2', 'layer3', 'layer4', 'linear', 'stem']
    """
    return _build(in_channels, num_classes, (64, 128, 256, 512), (2, 2, 2, 2), seed)


def small_resnet_masked(seed: int = 0, num_classes: int = 10, in_channels: int = 1,
                        widths=(8, 16, 32, 64), blocks=(1, 1, 1, 1)):
    """The same architecture at reduced scale (default: one block per stage, widths 8-64).

    Example:
        >>> import torch
        >>> m = small_resnet_masked()
        >>> tuple(m(torch.zeros(2, 1, 8, 8)).shape)
        (2, 10)
    """
    return _build(in_channels, num_classes, tuple(widths), tuple(blocks), seed)
