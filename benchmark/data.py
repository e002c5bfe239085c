"""Image datasets for the benchmark: a small registry of real data sets.

Every dataset is held in memory as uint8 tensors (N×C×H×W, C = 1 or 3) with
int64 labels, split into train / val / test, and loaded once per process
(``load_dataset`` caches by name, root and split seed), so the trials of a
sweep that share a worker process share one copy.

Registered here:

- ``digits``: scikit-learn's bundled 8×8 handwritten digits (1,797 real
  images, 0..16 grey levels scaled to 0..255). Needs no files and no network,
  so it is the offline default. Stratified 60/20/20 train/val/test split drawn
  from ``split_seed``.
- ``mnist``, ``fashion_mnist`` (28×28×1), ``cifar10`` (32×32×3), ``celeba``
  (64×64×3): torchvision's own dataset classes reading ``data_root(root)``.
  The validation split is carved (stratified) from torchvision's train split
  with ``split_seed``; torchvision's test split is the test split. Nothing is
  downloaded unless ``download=True``.

Other modules add datasets with ``register_dataset`` (``benchmark.domains``
registers the domain-adaptation digit sets).
"""
from __future__ import annotations

import hashlib
import os
import threading
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from benchmark.paths import DATA_DIR_ENV, cache_dir, data_root

__all__ = [
    "Split",
    "ImageDataset",
    "DatasetUnavailableError",
    "register_dataset",
    "available_datasets",
    "is_offline",
    "load_dataset",
    "forget_loaded_datasets",
    "to_float",
    "to_uint8",
    "sample_batch",
    "split_fingerprint",
]


# ---------------------------------------------------------------------------
# Containers
# ---------------------------------------------------------------------------

# eq=False: tensors do not compare as booleans, and identity hashing lets a
# split be a key of a WeakKeyDictionary (see split_fingerprint).
@dataclass(frozen=True, eq=False)
class Split:
    """One split of an image dataset: uint8 images N×C×H×W on CPU and int64 labels N."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"Split.images must be a uint8 tensor N×C×H×W, got {_describe(images)}")
        if images.shape[1] not in (1, 3):
            raise ValueError(f"Split.images must have 1 or 3 channels (N×C×H×W), got shape {tuple(images.shape)}")
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.dim() != 1:
            raise ValueError(f"Split.labels must be an int64 tensor of shape N, got {_describe(labels)}")
        if len(labels) != len(images):
            raise ValueError(f"Split has {len(images)} images but {len(labels)} labels")
        if images.device.type != "cpu" or labels.device.type != "cpu":
            raise ValueError("Split tensors must live on the CPU (move batches to the device, not the dataset)")

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """A dataset with train/val/test splits of one image shape.

    ``split_seed`` and ``root`` record how it was loaded; ``load_dataset`` fills
    them in, so a dataset can be loaded again (e.g. with the canonical split to
    train a feature extractor).
    """

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    split_seed: int = 0
    root: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"ImageDataset.name must be a non-empty string, got {self.name!r}")
        for split_name in ("train", "val", "test"):
            if not isinstance(getattr(self, split_name), Split):
                raise ValueError(f"ImageDataset.{split_name} must be a Split, got {type(getattr(self, split_name))}")
        shapes = {s: tuple(getattr(self, s).images.shape[1:]) for s in ("train", "val", "test")}
        if len(set(shapes.values())) != 1:
            raise ValueError(f"dataset {self.name!r}: splits have different image shapes {shapes}")
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ValueError(f"dataset {self.name!r}: num_classes must be a positive int, got {self.num_classes!r}")
        for split_name in ("train", "val", "test"):
            labels = getattr(self, split_name).labels
            if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
                raise ValueError(
                    f"dataset {self.name!r}: {split_name} labels must lie in [0, {self.num_classes}), "
                    f"got [{int(labels.min())}, {int(labels.max())}]"
                )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""
        c, h, w = self.train.images.shape[1:]
        return int(c), int(h), int(w)

    def split(self, name: str) -> Split:
        """The split called ``name`` ("train", "val" or "test")."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {name!r}")
        return getattr(self, name)


class DatasetUnavailableError(FileNotFoundError):
    """The dataset's files are not on disk and downloading was not asked for."""


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


# ---------------------------------------------------------------------------
# Conversions and sampling
# ---------------------------------------------------------------------------

def to_float(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 images (0..255) -> float32 in [-1, 1], the range of a tanh generator."""
    if not isinstance(images_uint8, torch.Tensor) or images_uint8.dtype != torch.uint8:
        raise ValueError(f"to_float expects a uint8 tensor, got {_describe(images_uint8)}")
    return images_uint8.to(torch.float32) / 127.5 - 1.0


def to_uint8(images_float: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] -> uint8 (0..255), clamped: the inverse of ``to_float``."""
    if not isinstance(images_float, torch.Tensor) or not images_float.is_floating_point():
        raise ValueError(f"to_uint8 expects a floating-point tensor, got {_describe(images_float)}")
    if not bool(torch.isfinite(images_float).all()):
        raise ValueError("to_uint8: images contain NaN or infinite values")
    return ((images_float + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def sample_batch(
    split: Split, batch_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch drawn uniformly with replacement: float images in [-1, 1] and int64 labels."""
    if not isinstance(split, Split) or len(split) == 0:
        raise ValueError("sample_batch needs a non-empty Split")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    index = torch.randint(len(split), (batch_size,), generator=generator, device=generator.device).cpu()
    return to_float(split.images[index]), split.labels[index]


_FINGERPRINTS: "weakref.WeakKeyDictionary[Split, str]" = weakref.WeakKeyDictionary()


def split_fingerprint(split: Split) -> str:
    """A short content hash of a split (images and labels), memoised per Split object.

    Cache names use it so that statistics computed from other files under the
    same dataset name (e.g. a different data root) are never mixed up.
    """
    cached = _FINGERPRINTS.get(split)
    if cached is None:
        digest = hashlib.blake2b(digest_size=8)
        digest.update(str(tuple(split.images.shape)).encode())
        digest.update(split.images.contiguous().numpy().tobytes())
        digest.update(split.labels.contiguous().numpy().tobytes())
        cached = _FINGERPRINTS[split] = digest.hexdigest()
    return cached


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------

Loader = Callable[..., ImageDataset]  # loader(root: Path, download: bool, split_seed: int) -> ImageDataset


@dataclass(frozen=True)
class _Entry:
    loader: Loader
    description: str
    offline: bool


_REGISTRY: dict[str, _Entry] = {}
_LOADED: dict[tuple[str, str, int], ImageDataset] = {}
_LOCK = threading.RLock()  # re-entrant: a loader may load another dataset


def register_dataset(name: str, loader: Loader, *, description: str, offline: bool) -> None:
    """Make ``name`` loadable by ``load_dataset``.

    ``loader(root: Path, download: bool, split_seed: int) -> ImageDataset``;
    ``offline`` says whether it works with no files and no network.
    Registering the same loader twice is a no-op; another loader under a
    taken name is an error.
    """
    if not isinstance(name, str) or not name or name != name.strip() or os.sep in name:
        raise ValueError(f"dataset name must be a non-empty string without spaces or '/', got {name!r}")
    if not callable(loader):
        raise ValueError(f"dataset {name!r}: loader must be callable (root, download, split_seed) -> ImageDataset")
    if not isinstance(description, str) or not description.strip():
        raise ValueError(f"dataset {name!r}: description must be a non-empty string")
    entry = _Entry(loader, description, bool(offline))
    existing = _REGISTRY.get(name)
    if existing is not None and existing.loader is not loader:
        raise ValueError(f"dataset {name!r} is already registered (by {existing.loader!r})")
    _REGISTRY[name] = entry


def _ensure_registry() -> None:
    # benchmark.domains registers its datasets through this module, so it can
    # only be imported once this module exists: lazily, here.
    import benchmark.domains  # noqa: F401


def available_datasets() -> dict[str, str]:
    """Registered dataset names -> descriptions."""
    _ensure_registry()
    return {name: entry.description for name, entry in sorted(_REGISTRY.items())}


def is_offline(name: str) -> bool:
    """Whether dataset ``name`` loads with no files on disk and no network."""
    return _entry(name).offline


def _entry(name: str) -> _Entry:
    _ensure_registry()
    if name not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def load_dataset(
    name: str, *, root: str | os.PathLike | None = None, download: bool = False, split_seed: int = 0
) -> ImageDataset:
    """Load a registered dataset, once per process.

    The same (name, root, split_seed) returns the same object; ``download``
    only matters the first time. ``root`` defaults to ``$BENCHMARK_DATA_DIR``.
    """
    entry = _entry(name)
    if not isinstance(split_seed, int) or isinstance(split_seed, bool) or split_seed < 0:
        raise ValueError(f"split_seed must be a non-negative int, got {split_seed!r}")
    resolved_root = data_root(root)
    key = (name, str(resolved_root), split_seed)
    with _LOCK:
        dataset = _LOADED.get(key)
        if dataset is None:
            dataset = entry.loader(resolved_root, bool(download), split_seed)
            if not isinstance(dataset, ImageDataset):
                raise TypeError(f"loader of dataset {name!r} returned {type(dataset).__name__}, not ImageDataset")
            dataset = replace(dataset, name=name, split_seed=split_seed, root=resolved_root)
            _LOADED[key] = dataset
    return dataset


def forget_loaded_datasets() -> None:
    """Drop the per-process cache: frees the memory; the next ``load_dataset`` loads again."""
    with _LOCK:
        _LOADED.clear()


# ---------------------------------------------------------------------------
# Splitting helpers
# ---------------------------------------------------------------------------

def _stratified_holdout(labels: np.ndarray, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out), stratified by label, deterministic in ``seed``; each sorted."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    stratify = labels if len(np.unique(labels)) > 1 else None
    kept, held = train_test_split(index, test_size=holdout, stratify=stratify, random_state=seed)
    return np.sort(kept), np.sort(held)


def _split(images: torch.Tensor, labels: torch.Tensor, index: np.ndarray) -> Split:
    index_t = torch.from_numpy(index)
    return Split(images[index_t].contiguous(), labels[index_t].contiguous())


def _train_val_test(
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    val_fraction: float,
    split_seed: int,
    name: str,
    num_classes: int,
) -> ImageDataset:
    """Carve a stratified validation split out of a dataset's official train split."""
    kept, held = _stratified_holdout(train_labels.numpy(), val_fraction, split_seed)
    return ImageDataset(
        name=name,
        train=_split(train_images, train_labels, kept),
        val=_split(train_images, train_labels, held),
        test=Split(test_images.contiguous(), test_labels.contiguous()),
        num_classes=num_classes,
    )


# ---------------------------------------------------------------------------
# digits (scikit-learn, bundled)
# ---------------------------------------------------------------------------

def _load_digits(root: Path, download: bool, split_seed: int) -> ImageDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Grey levels 0..16 -> 0..255 (exact at both ends).
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
    labels = bunch.target.astype(np.int64)
    # 60/20/20, stratified: first hold out 40 %, then halve it.
    train_idx, rest_idx = _stratified_holdout(labels, 0.4, split_seed)
    val_rel, test_rel = _stratified_holdout(labels[rest_idx], 0.5, split_seed)
    images_t, labels_t = torch.from_numpy(images), torch.from_numpy(labels)
    return ImageDataset(
        name="digits",
        train=_split(images_t, labels_t, train_idx),
        val=_split(images_t, labels_t, rest_idx[val_rel]),
        test=_split(images_t, labels_t, rest_idx[test_rel]),
        num_classes=10,
    )


# ---------------------------------------------------------------------------
# torchvision datasets
# ---------------------------------------------------------------------------

def _open_torchvision(name: str, make: Callable[[], object], folder: Path, layout: str):
    """Construct a torchvision dataset, turning its 'Dataset not found' into a clear error."""
    try:
        return make()
    except RuntimeError as error:
        if "Dataset not found" not in str(error):
            raise
        raise DatasetUnavailableError(
            f"dataset {name!r} not found in {folder} (torchvision: {error}). "
            f"To fetch it: pass download=True (CLI: --download; study file: download: true), or set {DATA_DIR_ENV} "
            f"(or pass root=) to a directory holding {layout}."
        ) from None


def _load_mnist_like(cls_name: str, name: str, description_layout: str):
    def loader(root: Path, download: bool, split_seed: int) -> ImageDataset:
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        folder = root / cls_name

        def part(train: bool):
            return _open_torchvision(
                name, lambda: cls(str(root), train=train, download=download), folder, description_layout
            )

        train, test = part(True), part(False)
        # .data is uint8 N×28×28, .targets int64: no per-image PIL decoding needed.
        return _train_val_test(
            train.data.unsqueeze(1), train.targets.to(torch.int64),
            test.data.unsqueeze(1), test.targets.to(torch.int64),
            val_fraction=1 / 6, split_seed=split_seed, name=name, num_classes=10,
        )

    return loader


def _load_cifar10(root: Path, download: bool, split_seed: int) -> ImageDataset:
    import torchvision.datasets as tvd

    layout = "cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta)"

    def part(train: bool):
        return _open_torchvision(
            "cifar10", lambda: tvd.CIFAR10(str(root), train=train, download=download),
            root / "cifar-10-batches-py", layout,
        )

    train, test = part(True), part(False)

    def tensors(ds) -> tuple[torch.Tensor, torch.Tensor]:
        # .data is uint8 N×32×32×3 (HWC): to N×3×32×32.
        return torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(ds.targets, dtype=torch.int64)

    return _train_val_test(
        *tensors(train), *tensors(test), val_fraction=0.1, split_seed=split_seed, name="cifar10", num_classes=10
    )


CELEBA_IMAGE_SIZE = 64
CELEBA_LABEL_ATTRIBUTE = "Male"
_CELEBA_DECODE_VERSION = "v1"


def _decode_celeba_part(root: Path, download: bool, part: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of one official CelebA split as uint8 N×3×64×64 and the 'Male' attribute as labels.

    Decoding ~200k JPEGs takes minutes, so the decoded arrays are kept as .npy
    files under ``cache_dir()/decoded`` (read back without pickle); CelebA's
    files are checksummed by torchvision, so the cache does not depend on the root.
    """
    import torchvision.datasets as tvd
    from torchvision import transforms

    out_dir = cache_dir() / "decoded"
    stem = f"celeba-{CELEBA_IMAGE_SIZE}-{part}-{_CELEBA_DECODE_VERSION}"
    images_path, labels_path = out_dir / f"{stem}-images.npy", out_dir / f"{stem}-labels.npy"
    if images_path.exists() and labels_path.exists():
        images = np.load(images_path, allow_pickle=False)
        labels = np.load(labels_path, allow_pickle=False)
        return torch.from_numpy(images), torch.from_numpy(labels)

    # torchvision's usual CelebA preprocessing: 178×178 centre crop of the
    # aligned 178×218 image, then resize to 64×64.
    transform = transforms.Compose([
        transforms.CenterCrop(178),
        transforms.Resize(CELEBA_IMAGE_SIZE, antialias=True),
        transforms.PILToTensor(),
    ])
    dataset = _open_torchvision(
        "celeba",
        lambda: tvd.CelebA(str(root), split=part, target_type="attr", transform=transform, download=download),
        root / "celeba",
        "celeba/img_align_celeba/ and celeba/list_attr_celeba.txt, identity_CelebA.txt, list_bbox_celeba.txt, "
        "list_landmarks_align_celeba.txt, list_eval_partition.txt",
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=512, num_workers=min(8, os.cpu_count() or 1))
    images_t = torch.empty((len(dataset), 3, CELEBA_IMAGE_SIZE, CELEBA_IMAGE_SIZE), dtype=torch.uint8)
    start = 0
    for batch, _ in loader:
        images_t[start:start + len(batch)] = batch
        start += len(batch)
    labels_t = dataset.attr[:, dataset.attr_names.index(CELEBA_LABEL_ATTRIBUTE)].to(torch.int64).contiguous()

    out_dir.mkdir(parents=True, exist_ok=True)
    for path, array in ((images_path, images_t.numpy()), (labels_path, labels_t.numpy())):
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
        os.replace(tmp, path)
    return images_t, labels_t


def _load_celeba(root: Path, download: bool, split_seed: int) -> ImageDataset:
    """CelebA, 64×64×3, labels = the 'Male' attribute (0/1).

    Decoded once per process (and cached decoded on disk); held as uint8, the
    train + test images take about 2.2 GB of memory. Validation is carved from
    the official train split like the other torchvision datasets; the official
    'valid' split is not used.
    """
    train_images, train_labels = _decode_celeba_part(root, download, "train")
    test_images, test_labels = _decode_celeba_part(root, download, "test")
    return _train_val_test(
        train_images, train_labels, test_images, test_labels,
        val_fraction=0.1, split_seed=split_seed, name="celeba", num_classes=2,
    )


_MNIST_LAYOUT = "{cls}/raw/ with train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"

register_dataset(
    "digits", _load_digits, offline=True,
    description="scikit-learn's bundled 8x8 handwritten digits (1,797 images, 1x8x8), stratified 60/20/20 split",
)
register_dataset(
    "mnist", _load_mnist_like("MNIST", "mnist", _MNIST_LAYOUT.format(cls="MNIST")), offline=False,
    description="MNIST via torchvision (1x28x28), 50k/10k train/val from the official train split, 10k test",
)
register_dataset(
    "fashion_mnist",
    _load_mnist_like("FashionMNIST", "fashion_mnist", _MNIST_LAYOUT.format(cls="FashionMNIST")), offline=False,
    description="Fashion-MNIST via torchvision (1x28x28), 50k/10k train/val from the official train split, 10k test",
)
register_dataset(
    "cifar10", _load_cifar10, offline=False,
    description="CIFAR-10 via torchvision (3x32x32), 45k/5k train/val from the official train split, 10k test",
)
register_dataset(
    "celeba", _load_celeba, offline=False,
    description="CelebA via torchvision, 178 centre crop resized to 3x64x64, label = 'Male' attribute; "
    "val = 10% of the official train split, official test split",
)
