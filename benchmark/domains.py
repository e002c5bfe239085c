"""Domain-adaptation datasets and source→target pairs of digit images.

Datasets registered here (through :func:`benchmark.data.register_dataset`):

- ``digits_m`` (offline): scikit-learn's 8×8 ``digits`` built into a colour
  domain by the MNIST-M recipe (below). Each split is the same split of
  ``digits`` (same images, same order, same labels), blended.
- ``mnist_m``: MNIST (torchvision) blended by the same recipe, 3×28×28.
- ``usps``: USPS through torchvision (1×16×16; ``usps.bz2`` and ``usps.t.bz2``
  in the data root, torchvision's layout).
- ``svhn``: SVHN cropped digits (3×32×32; ``train_32x32.mat`` and
  ``test_32x32.mat`` in the data root, torchvision's layout). torchvision
  downloads it; the files are read with ``scipy.io.loadmat`` exactly as
  torchvision reads them, but without torchvision's MD5 check of the whole
  file on every load.

Validation splits are carved (stratified, from ``split_seed``) out of each
official train split; the official test split is the test split.

**The MNIST-M recipe** (Ganin & Lempitsky, 2015): every grey digit is blended
with a random patch of a colour photograph, ``out = |patch − digit|`` per
channel, so strokes invert the background colour. The published MNIST-M cut
its patches from the BSDS500 photographs; those are not bundled anywhere we
may read offline, so here the patches come from the natural colour
photographs bundled with scikit-image (:data:`PHOTOGRAPHS`: astronaut,
coffee, chelsea the cat, rocket, motorcycle — five photographs instead of
BSDS500's 500, so backgrounds repeat far more often). Patches are cut at the
scale at which a 28-pixel MNIST-M patch sees its photograph: for 8×8 digits
the photographs are first shrunk by 8/28, so a patch shows texture, not a
flat colour. The blend is deterministic from a seed (:data:`BLEND_SEED` for
the registered datasets).

Pairs (:data:`DOMAIN_PAIRS`, loaded with :func:`load_domain_pair`) bring the
two domains to one image shape — grey images are repeated to three channels
when the other domain is in colour, and images are resized (bilinear, with
anti-aliasing) to the common side.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.data import (
    DatasetUnavailableError,
    ImageDataset,
    Split,
    load_dataset,
    register_dataset,
)
from benchmark.paths import DATA_DIR_ENV, data_root

__all__ = [
    "PHOTOGRAPHS",
    "BLEND_SEED",
    "DomainPair",
    "DOMAIN_PAIRS",
    "load_photographs",
    "blend_with_photographs",
    "blend_dataset",
    "to_common_shape",
    "load_domain_pair",
]

# Natural colour photographs shipped inside the scikit-image wheel (no pooch
# download): name -> loader name in skimage.data.
PHOTOGRAPHS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle")
BLEND_SEED = 2016  # the registered digits_m / mnist_m (Ganin et al., 2016)
MNIST_M_PATCH_SIDE = 28  # the published MNIST-M patch side, in photograph pixels


# ---------------------------------------------------------------------------
# The MNIST-M recipe
# ---------------------------------------------------------------------------

_PHOTO_CACHE: dict[float, list[np.ndarray]] = {}
_PHOTO_LOCK = threading.Lock()


def _read_photograph(name: str) -> np.ndarray:
    import skimage.data

    if name == "motorcycle":
        image = skimage.data.stereo_motorcycle()[0]  # the left view
    else:
        image = getattr(skimage.data, name)()
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"photograph {name!r}: expected uint8 H×W×3, got {image.dtype} {image.shape}")
    return image


def load_photographs(scale: float = 1.0) -> list[np.ndarray]:
    """The :data:`PHOTOGRAPHS` as uint8 H×W×3 arrays, shrunk by ``scale`` (anti-aliased); cached."""
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"scale must lie in (0, 1], got {scale!r}")
    with _PHOTO_LOCK:
        if scale not in _PHOTO_CACHE:
            from skimage.transform import rescale

            photos = []
            for name in PHOTOGRAPHS:
                image = _read_photograph(name)
                if scale != 1.0:
                    shrunk = rescale(image, scale, anti_aliasing=True, channel_axis=2, preserve_range=True)
                    image = np.clip(np.rint(shrunk), 0, 255).astype(np.uint8)
                photos.append(image)
            _PHOTO_CACHE[scale] = photos
        return _PHOTO_CACHE[scale]


def blend_with_photographs(images: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """The MNIST-M blend: uint8 N×1×H×W digits -> uint8 N×3×H×W, ``|patch − digit|`` per channel.

    Each image gets a photograph drawn uniformly from :data:`PHOTOGRAPHS` and a
    uniformly placed H×W patch of it; photographs are shrunk by
    H / 28 first when H < 28, so a patch covers what a 28-pixel MNIST-M patch
    covers.
    """
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError("blend_with_photographs: images must be a uint8 tensor N×1×H×W")
    if images.shape[1] != 1:
        raise ValueError(f"blend_with_photographs: images must be grey (1 channel), got shape {tuple(images.shape)}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    n, _, height, width = images.shape
    photos = load_photographs(min(1.0, max(height, width) / MNIST_M_PATCH_SIDE))
    which = rng.integers(len(photos), size=n)
    # Draw the corners for every image (whatever its photograph) so that the
    # stream of random numbers does not depend on which photograph came out.
    u_rows, u_cols = rng.random(n), rng.random(n)
    out = np.empty((n, 3, height, width), dtype=np.uint8)
    digits = images[:, 0].numpy().astype(np.int16)
    for k, photo in enumerate(photos):
        chosen = np.flatnonzero(which == k)
        if len(chosen) == 0:
            continue
        rows = (u_rows[chosen] * (photo.shape[0] - height + 1)).astype(np.int64)
        cols = (u_cols[chosen] * (photo.shape[1] - width + 1)).astype(np.int64)
        # windows[r, c] is the 3×H×W patch with top-left corner (r, c): a view, no copy.
        windows = np.lib.stride_tricks.sliding_window_view(photo, (height, width), axis=(0, 1))
        patches = windows[rows, cols].astype(np.int16)  # n_k×3×H×W
        out[chosen] = np.abs(patches - digits[chosen, None]).astype(np.uint8)
    return torch.from_numpy(out)


def blend_dataset(dataset: ImageDataset, seed: int, name: str) -> ImageDataset:
    """Every split of a grey dataset blended by the MNIST-M recipe (labels and order kept)."""
    splits = {}
    for index, split_name in enumerate(("train", "val", "test")):
        split = dataset.split(split_name)
        rng = np.random.default_rng([seed, index])
        splits[split_name] = Split(blend_with_photographs(split.images, rng), split.labels.clone())
    return ImageDataset(name=name, num_classes=dataset.num_classes, **splits)


# ---------------------------------------------------------------------------
# Loaders
# ---------------------------------------------------------------------------

def _holdout_split(
    name: str,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    val_fraction: float,
    split_seed: int,
) -> ImageDataset:
    """Stratified validation split carved from the official train split."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(train_labels))
    kept, held = train_test_split(
        index, test_size=val_fraction, stratify=train_labels.numpy(), random_state=split_seed
    )
    kept, held = torch.from_numpy(np.sort(kept)), torch.from_numpy(np.sort(held))
    return ImageDataset(
        name=name,
        train=Split(train_images[kept].contiguous(), train_labels[kept].contiguous()),
        val=Split(train_images[held].contiguous(), train_labels[held].contiguous()),
        test=Split(test_images.contiguous(), test_labels.contiguous()),
        num_classes=10,
    )


def _unavailable(name: str, folder: Path, layout: str) -> DatasetUnavailableError:
    return DatasetUnavailableError(
        f"dataset {name!r} not found in {folder}. "
        "To fetch it: pass download=True (CLI: --download; study: download: true), "
        f"or set {DATA_DIR_ENV} (or pass root=) to a directory holding {layout}."
    )


def _load_digits_m(root: Path, download: bool, split_seed: int) -> ImageDataset:
    return blend_dataset(load_dataset("digits", root=root, split_seed=split_seed), BLEND_SEED, "digits_m")


def _load_mnist_m(root: Path, download: bool, split_seed: int) -> ImageDataset:
    mnist = load_dataset("mnist", root=root, download=download, split_seed=split_seed)
    return blend_dataset(mnist, BLEND_SEED, "mnist_m")


_USPS_FILES = {True: "usps.bz2", False: "usps.t.bz2"}


def _load_usps(root: Path, download: bool, split_seed: int) -> ImageDataset:
    import torchvision.datasets as tvd

    parts = {}
    for train, filename in _USPS_FILES.items():
        if not (root / filename).exists() and not download:
            raise _unavailable("usps", root, "usps.bz2 and usps.t.bz2 (libsvm text, bz2-compressed)")
        dataset = tvd.USPS(str(root), train=train, download=download)
        # .data is uint8 N×16×16, .targets a list of ints in 0..9.
        parts[train] = (
            torch.from_numpy(np.ascontiguousarray(dataset.data)).unsqueeze(1),
            torch.tensor(dataset.targets, dtype=torch.int64),
        )
    return _holdout_split("usps", *parts[True], *parts[False], val_fraction=1 / 6, split_seed=split_seed)


_SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}


def _read_svhn_mat(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Images N×3×32×32 and labels (10 -> 0) from one SVHN .mat file, as torchvision reads it."""
    from scipy.io import loadmat

    mat = loadmat(str(path))
    if "X" not in mat or "y" not in mat:
        raise ValueError(f"{path}: not an SVHN .mat file (expected variables 'X' and 'y')")
    images = np.transpose(mat["X"], (3, 2, 0, 1))  # H×W×C×N -> N×C×H×W
    labels = mat["y"].astype(np.int64).reshape(-1)
    labels[labels == 10] = 0
    if images.dtype != np.uint8 or images.shape[1:] != (3, 32, 32) or len(labels) != len(images):
        raise ValueError(f"{path}: expected X of uint8 32×32×3×N and y of N labels, got {mat['X'].shape}")
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels)


def _load_svhn(root: Path, download: bool, split_seed: int) -> ImageDataset:
    parts = {}
    for split, filename in _SVHN_FILES.items():
        path = root / filename
        if not path.exists():
            if not download:
                raise _unavailable("svhn", root, "train_32x32.mat and test_32x32.mat")
            import torchvision.datasets as tvd

            tvd.SVHN(str(root), split=split, download=True)  # downloads and checks the MD5
        parts[split] = _read_svhn_mat(path)
    return _holdout_split("svhn", *parts["train"], *parts["test"], val_fraction=0.1, split_seed=split_seed)


register_dataset(
    "digits_m", _load_digits_m, offline=True,
    description="digits blended with patches of scikit-image's bundled colour photographs "
    "(MNIST-M recipe, 3x8x8), the same splits as digits",
)
register_dataset(
    "mnist_m", _load_mnist_m, offline=False,
    description="MNIST blended with patches of scikit-image's bundled colour photographs "
    "(MNIST-M recipe, 3x28x28; not the published BSDS500-based MNIST-M), the same splits as mnist",
)
register_dataset(
    "usps", _load_usps, offline=False,
    description="USPS via torchvision (1x16x16), val = 1/6 of the official train split (7,291), official test (2,007)",
)
register_dataset(
    "svhn", _load_svhn, offline=False,
    description="SVHN cropped digits (3x32x32), val = 10% of the official train split (73,257), "
    "official test (26,032); 'extra' not used",
)


# ---------------------------------------------------------------------------
# Pairs
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class DomainPair:
    """A source→target pair and the image shape (C, H, W) both are brought to."""

    source: str
    target: str
    image_shape: tuple[int, int, int]
    description: str

    @property
    def name(self) -> str:
        return f"{self.source}->{self.target}"


DOMAIN_PAIRS: dict[str, DomainPair] = {
    pair.name: pair
    for pair in (
        DomainPair("digits", "digits_m", (3, 8, 8), "offline default: 8x8 grey digits -> their colour-blended copies"),
        DomainPair("mnist", "mnist_m", (3, 28, 28), "MNIST -> MNIST-M (recipe with scikit-image photographs)"),
        DomainPair("mnist", "usps", (1, 28, 28), "MNIST -> USPS resized 16 -> 28"),
        DomainPair("usps", "mnist", (1, 28, 28), "USPS resized 16 -> 28 -> MNIST"),
        DomainPair("svhn", "mnist", (3, 32, 32), "SVHN -> MNIST resized 28 -> 32, grey repeated to 3 channels"),
    )
}


def _convert_split(split: Split, shape: tuple[int, int, int]) -> Split:
    channels, height, width = shape
    images = split.images
    if images.shape[1] != channels:
        if images.shape[1] == 1 and channels == 3:
            images = images.expand(-1, 3, -1, -1)
        else:
            raise ValueError(f"cannot convert {images.shape[1]}-channel images to {channels} channels")
    if tuple(images.shape[2:]) != (height, width):
        resized = F.interpolate(
            images.to(torch.float32), size=(height, width), mode="bilinear", align_corners=False, antialias=True
        )
        images = resized.round().clamp(0, 255).to(torch.uint8)
    return Split(images.contiguous(), split.labels)


def to_common_shape(dataset: ImageDataset, shape: tuple[int, int, int]) -> ImageDataset:
    """``dataset`` with every split brought to ``shape`` (grey -> 3 channels, bilinear resize)."""
    if tuple(dataset.image_shape) == tuple(shape):
        return dataset
    return replace(dataset, **{s: _convert_split(dataset.split(s), shape) for s in ("train", "val", "test")})


_PAIRS_LOADED: dict[tuple[str, str, int], tuple[ImageDataset, ImageDataset]] = {}
_PAIRS_LOCK = threading.Lock()


def load_domain_pair(
    name: str, *, root: str | os.PathLike | None = None, download: bool = False, split_seed: int = 0
) -> tuple[ImageDataset, ImageDataset]:
    """(source, target) of the pair ``name`` (e.g. ``"digits->digits_m"``), both in the pair's image shape.

    Loaded once per process like :func:`benchmark.data.load_dataset`; missing
    files raise :class:`~benchmark.data.DatasetUnavailableError`.
    """
    if name not in DOMAIN_PAIRS:
        raise ValueError(f"unknown domain pair {name!r}; known pairs: {', '.join(DOMAIN_PAIRS)}")
    pair = DOMAIN_PAIRS[name]
    key = (name, str(data_root(root)), split_seed)
    with _PAIRS_LOCK:
        if key not in _PAIRS_LOADED:
            source = load_dataset(pair.source, root=root, download=download, split_seed=split_seed)
            target = load_dataset(pair.target, root=root, download=download, split_seed=split_seed)
            if source.num_classes != target.num_classes:
                raise ValueError(f"pair {name!r}: {source.num_classes} source classes, {target.num_classes} target")
            _PAIRS_LOADED[key] = (to_common_shape(source, pair.image_shape), to_common_shape(target, pair.image_shape))
        return _PAIRS_LOADED[key]
