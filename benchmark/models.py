"""DCGAN-family generator and discriminator (Radford et al., 2016), sized from the image shape.

G: z → linear → (c·2^(n-1), s0, s0) → n × [ConvTranspose(4, stride 2) + BatchNorm + ReLU] → tanh image
D: image → n × [Conv(4, stride 2) + (BatchNorm) + LeakyReLU(0.2)] → linear → one logit

n is the number of halvings from the image side to the base side s0 (4 for
8, 32 and 64 pixels, 7 for 28), so 8×8×1 digits, 28×28×1 MNIST, 32×32×3
CIFAR-10 and 64×64×3 CelebA all get the same architecture family. ``width``
scales every layer's channels (64 · width at the finest layer).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Generator", "Discriminator", "upsampling_plan"]


def upsampling_plan(side: int) -> tuple[int, int]:
    """``(n, s0)``: halve ``side`` n times (while even and at least 8) to reach the base side s0."""
    if side < 4:
        raise ValueError(f"image side must be >= 4 pixels, got {side}")
    n, s0 = 0, side
    while s0 % 2 == 0 and s0 >= 8:
        s0 //= 2
        n += 1
    if n == 0:
        raise ValueError(f"image side {side} cannot be reached by stride-2 upsampling from a base side >= 4")
    return n, s0


def _channels(width: float, n: int) -> list[int]:
    """Channels from the coarsest to the finest feature map: base·2^(n-1), ..., base."""
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width!r}")
    base = max(8, int(round(64 * width)))
    return [base * 2 ** (n - 1 - i) for i in range(n)]


def _init_dcgan(module: nn.Module) -> None:
    # DCGAN initialisation: N(0, 0.02) weights, BatchNorm scale N(1, 0.02).
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    def __init__(self, image_shape: tuple[int, int, int], z_dim: int = 64, width: float = 1.0):
        super().__init__()
        channels_out, height, width_px = image_shape
        if height != width_px:
            raise ValueError(f"square images only, got {height}×{width_px}")
        n, s0 = upsampling_plan(height)
        chans = _channels(width, n) + [channels_out]
        self.z_dim = z_dim
        self.project = nn.Sequential(
            nn.Linear(z_dim, chans[0] * s0 * s0, bias=False),
            nn.Unflatten(1, (chans[0], s0, s0)),
            nn.BatchNorm2d(chans[0]),
            nn.ReLU(inplace=True),
        )
        layers: list[nn.Module] = []
        for i in range(n):
            last = i == n - 1
            layers.append(nn.ConvTranspose2d(chans[i], chans[i + 1], 4, 2, 1, bias=last))
            layers += [nn.Tanh()] if last else [nn.BatchNorm2d(chans[i + 1]), nn.ReLU(inplace=True)]
        self.upsample = nn.Sequential(*layers)
        self.apply(_init_dcgan)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.project(z))


class Discriminator(nn.Module):
    """``batchnorm=False`` for losses with a gradient penalty (BatchNorm couples the samples)."""

    def __init__(self, image_shape: tuple[int, int, int], width: float = 1.0, batchnorm: bool = True):
        super().__init__()
        channels_in, height, _ = image_shape
        n, s0 = upsampling_plan(height)
        chans = [channels_in] + _channels(width, n)[::-1]
        layers: list[nn.Module] = []
        for i in range(n):
            layers.append(nn.Conv2d(chans[i], chans[i + 1], 4, 2, 1, bias=not (batchnorm and i > 0)))
            if batchnorm and i > 0:
                layers.append(nn.BatchNorm2d(chans[i + 1]))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        layers += [nn.Flatten(), nn.Linear(chans[-1] * s0 * s0, 1)]
        self.net = nn.Sequential(*layers)
        self.apply(_init_dcgan)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)
