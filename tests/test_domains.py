"""Domain-adaptation datasets: the MNIST-M recipe, digits_m, the pairs, and the torchvision loaders on tiny files."""

import bz2

import numpy as np
import pytest
import torch
from scipy.io import savemat

from benchmark.data import DatasetUnavailableError, ImageDataset, Split, load_dataset
from benchmark.domains import (
    BLEND_SEED,
    DOMAIN_PAIRS,
    blend_dataset,
    blend_with_photographs,
    load_domain_pair,
    load_photographs,
    to_common_shape,
)


# ---------------------------------------------------------------------------
# The MNIST-M recipe and digits_m
# ---------------------------------------------------------------------------

def test_blend_is_the_absolute_difference_of_a_photograph_patch_and_the_digit():
    side = 28  # full-resolution photographs: patches can be found in them
    black = torch.zeros(5, 1, side, side, dtype=torch.uint8)
    white = torch.full((5, 1, side, side), 255, dtype=torch.uint8)
    on_black = blend_with_photographs(black, np.random.default_rng(7))
    on_white = blend_with_photographs(white, np.random.default_rng(7))
    assert on_black.shape == (5, 3, side, side) and on_black.dtype == torch.uint8
    # |patch - 0| = patch and |patch - 255| = 255 - patch, with the same patches for the same seed.
    assert torch.equal(on_black.int() + on_white.int(), torch.full_like(on_black.int(), 255))
    photos = load_photographs(1.0)
    for patch in on_black.numpy():
        hwc = patch.transpose(1, 2, 0)
        assert any(_contains(photo, hwc) for photo in photos)


def _contains(photo: np.ndarray, patch: np.ndarray) -> bool:
    """Whether the h×w×3 ``patch`` is a window of ``photo`` (candidates: where the top-left pixel matches)."""
    h, w = patch.shape[:2]
    rows, cols = np.nonzero((photo[: photo.shape[0] - h + 1, : photo.shape[1] - w + 1] == patch[0, 0]).all(axis=2))
    return any(np.array_equal(photo[r:r + h, c:c + w], patch) for r, c in zip(rows, cols))


def test_digits_m_is_deterministic_for_a_seed_and_differs_from_digits():
    digits = load_dataset("digits")
    first, again, other = (blend_dataset(digits, seed, "digits_m") for seed in (5, 5, 6))
    for split in ("train", "val", "test"):
        assert torch.equal(first.split(split).images, again.split(split).images)
        assert not torch.equal(first.split(split).images, other.split(split).images)
        assert torch.equal(first.split(split).labels, digits.split(split).labels)
    assert first.image_shape == (3, 8, 8)
    grey_as_rgb = digits.train.images.expand(-1, 3, -1, -1)
    assert (first.train.images != grey_as_rgb).float().mean() > 0.5
    # Colour: the three channels of a blended image are not equal.
    channels = first.train.images.float()
    assert (channels[:, 0] - channels[:, 1]).abs().mean() > 5

    registered = load_dataset("digits_m")
    assert torch.equal(registered.test.images, blend_dataset(digits, BLEND_SEED, "digits_m").test.images)


def test_blend_rejects_colour_input():
    with pytest.raises(ValueError, match="grey"):
        blend_with_photographs(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), np.random.default_rng(0))


# ---------------------------------------------------------------------------
# Pairs
# ---------------------------------------------------------------------------

def test_the_offline_pair_comes_in_one_shape():
    source, target = load_domain_pair("digits->digits_m")
    assert source.image_shape == target.image_shape == DOMAIN_PAIRS["digits->digits_m"].image_shape == (3, 8, 8)
    assert source.name == "digits" and target.name == "digits_m"
    # grey repeated to three channels
    assert torch.equal(source.train.images[:, 0], source.train.images[:, 2])
    assert load_domain_pair("digits->digits_m")[1] is target  # loaded once per process
    with pytest.raises(ValueError, match="known pairs"):
        load_domain_pair("digits->usps")


def test_common_shape_conversion_repeats_grey_and_resizes():
    images = torch.full((4, 1, 16, 16), 200, dtype=torch.uint8)
    images[:, :, :8] = 10
    labels = torch.arange(4)
    data = ImageDataset("tiny", Split(images, labels), Split(images, labels), Split(images, labels), num_classes=4)
    converted = to_common_shape(data, (3, 28, 28))
    assert converted.image_shape == (3, 28, 28)
    out = converted.test.images
    assert torch.equal(out[:, 0], out[:, 1])
    assert int(out[0, 0, 0, 0]) == 10 and int(out[0, 0, -1, -1]) == 200  # flat areas keep their value
    with pytest.raises(ValueError, match="channels"):
        to_common_shape(converted, (1, 28, 28))


# ---------------------------------------------------------------------------
# torchvision datasets from tiny files in each dataset's own format
# ---------------------------------------------------------------------------

def _digit_images(n: int, side: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n grey images (uint8 n×side×side) whose top-left pixel encodes the label, balanced labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    images = rng.integers(0, 256, size=(n, side, side), dtype=np.uint8)
    images[:, 0, 0] = labels * 20
    return images, labels


def _write_mnist(write_mnist_files, root, n_train=120, n_test=30):
    train_images, train_labels = _digit_images(n_train, 28, 0)
    test_images, test_labels = _digit_images(n_test, 28, 1)
    write_mnist_files(root, "MNIST", train_images, train_labels, test_images, test_labels)


def _write_usps(root, n_train=120, n_test=30):
    # libsvm text: "label i:value ..." with labels 1..10 and values in [-1, 1], bz2-compressed.
    for filename, n, seed in (("usps.bz2", n_train, 2), ("usps.t.bz2", n_test, 3)):
        images, labels = _digit_images(n, 16, seed)
        values = images.reshape(n, -1).astype(np.float64) / 255 * 2 - 1
        lines = [
            f"{label + 1} " + " ".join(f"{i + 1}:{v:.6f}" for i, v in enumerate(row))
            for label, row in zip(labels, values)
        ]
        with bz2.open(root / filename, "wt") as handle:
            handle.write("\n".join(lines) + "\n")


def _write_svhn(root, n_train=120, n_test=30):
    # .mat with X: 32×32×3×N uint8 and y: N×1 labels where digit 0 is stored as 10.
    for filename, n, seed in (("train_32x32.mat", n_train, 4), ("test_32x32.mat", n_test, 5)):
        grey, labels = _digit_images(n, 32, seed)
        rgb = np.stack([grey, grey // 2, 255 - grey], axis=-1)  # n×32×32×3, distinct channels
        y = np.where(labels == 0, 10, labels).reshape(-1, 1).astype(np.uint8)
        savemat(str(root / filename), {"X": np.ascontiguousarray(rgb.transpose(1, 2, 3, 0)), "y": y})


def _label_from_corner(images: torch.Tensor) -> torch.Tensor:
    return (images[:, 0, 0, 0].double() / 20).round().long()


def test_usps_and_svhn_read_their_own_file_formats(tmp_path):
    _write_usps(tmp_path)
    _write_svhn(tmp_path)
    usps = load_dataset("usps", root=tmp_path)
    assert usps.image_shape == (1, 16, 16)
    assert (len(usps.train), len(usps.val), len(usps.test)) == (100, 20, 30)
    for split in ("train", "val", "test"):
        part = usps.split(split)
        assert torch.equal(_label_from_corner(part.images), part.labels)
    svhn = load_dataset("svhn", root=tmp_path)
    assert svhn.image_shape == (3, 32, 32) and len(svhn.test) == 30
    assert set(svhn.test.labels.tolist()) == set(range(10))  # 10 -> 0
    assert torch.equal(_label_from_corner(svhn.test.images), svhn.test.labels)
    green = svhn.test.images[:, 1].int()
    assert torch.equal(green, svhn.test.images[:, 0].int() // 2)  # channel order kept


def test_torchvision_pairs_load_from_tiny_files(tmp_path, write_mnist_files):
    _write_mnist(write_mnist_files, tmp_path)
    _write_usps(tmp_path)
    _write_svhn(tmp_path)
    expected = {
        "mnist->usps": (1, 28, 28),
        "usps->mnist": (1, 28, 28),
        "svhn->mnist": (3, 32, 32),
        "mnist->mnist_m": (3, 28, 28),
    }
    assert set(expected) | {"digits->digits_m"} == set(DOMAIN_PAIRS)
    for name, shape in expected.items():
        source, target = load_domain_pair(name, root=tmp_path)
        assert source.image_shape == target.image_shape == shape, name
        for data in (source, target):
            assert data.num_classes == 10
            assert set(data.train.labels.tolist()) == set(range(10))
    mnist, mnist_m = load_domain_pair("mnist->mnist_m", root=tmp_path)
    assert torch.equal(mnist.test.labels, mnist_m.test.labels)
    assert not torch.equal(mnist.test.images, mnist_m.test.images)


@pytest.mark.parametrize("name, files", [("usps", "usps.bz2"), ("svhn", "train_32x32.mat"), ("mnist_m", "MNIST")])
def test_missing_files_raise_a_clear_error_offline(tmp_path, name, files):
    with pytest.raises(DatasetUnavailableError) as error:
        load_dataset(name, root=tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message and "download=True" in message and files in message
