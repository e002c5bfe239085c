"""DCGAN generator/discriminator sized from each supported image shape."""

import pytest
import torch

from benchmark.models import Discriminator, Generator, upsampling_plan


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 64, 64)])
def test_generator_and_discriminator_fit_the_image_shape(shape):
    torch.manual_seed(0)
    g, d = Generator(shape, z_dim=16, width=0.25), Discriminator(shape, width=0.25)
    images = g(torch.randn(5, 16))
    assert images.shape == (5, *shape)
    assert images.abs().max() <= 1.0  # tanh output, the [-1, 1] range of the data
    assert d(images).shape == (5,)


def test_width_scales_the_channels():
    small = sum(p.numel() for p in Generator((1, 28, 28), width=0.25).parameters())
    large = sum(p.numel() for p in Generator((1, 28, 28), width=1.0).parameters())
    assert large > 4 * small


def test_unsupported_sizes_are_rejected_clearly():
    assert upsampling_plan(28) == (2, 7) and upsampling_plan(64) == (4, 4)
    with pytest.raises(ValueError, match="side"):
        upsampling_plan(7)
    with pytest.raises(ValueError, match="width"):
        Generator((1, 8, 8), width=0.0)
