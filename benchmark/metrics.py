"""FID and KID of generated images, computed by torch-fidelity.

Two feature spaces:

- RGB data: torch-fidelity's Inception-v3 (``inception-v3-compat``, the
  standard FID network). Its weights file must be on disk, because nothing is
  downloaded at run time unless asked (``download_weights=True``): pass
  ``weights_path=`` or set ``$BENCHMARK_INCEPTION_WEIGHTS``, or put the file in
  torch hub's checkpoint folder where torch-fidelity looks for it.
- Grey-scale data (``digits``; also MNIST-like 28×28×1 data): Inception
  features of upscaled 8×8 digits mean little, so a small CNN classifier is
  trained on the dataset's train split (canonical split seed 0, fixed seed,
  CPU, one thread, deterministic algorithms) and its 64-d penultimate layer
  is the feature space. It is registered with torch-fidelity as the feature
  extractor ``<dataset>-cnn-<EXTRACTOR_VERSION>`` (e.g. ``digits-cnn-v2``),
  saved as a state dict under ``cache_dir()/feature_extractors/`` with a JSON
  record beside it (test accuracy, training time, train-split hash), and must
  reach ``MIN_TEST_ACCURACY`` (95 % on digits) or training is an error.

``FidelityEvaluator(extractor="auto")`` picks the CNN for 1-channel datasets
and Inception for RGB ones.

torch-fidelity hands feature extractors whatever the input Dataset yields,
batched: here uint8 N×C×H×W. The Inception network needs C = 3, so grey
images are repeated to three channels for it; the CNN takes the dataset's own
channel count (and averages RGB input to grey if given a 3-channel image).

The real side's features and FID statistics go through torch-fidelity's own
cache (``cache_dir()/fidelity``) under a name that encodes everything that
changes them: dataset, split, split seed, content hash, sample count and the
extractor (name, version, weights hash). They are computed once per machine,
not per trial.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch_fidelity
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3  # the file torch-fidelity downloads
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from benchmark.data import ImageDataset, Split, load_dataset, split_fingerprint, to_float, to_uint8
from benchmark.paths import cache_dir

__all__ = [
    "EXTRACTOR_VERSION",
    "MIN_TEST_ACCURACY",
    "INCEPTION_WEIGHTS_ENV",
    "FeatureExtractorUnavailableError",
    "FeatureCNN",
    "CnnInfo",
    "load_or_train_cnn",
    "forget_loaded_cnns",
    "classifier_accuracy",
    "inception_weights_path",
    "FidelityEvaluator",
]

# Bump when the CNN architecture or training recipe changes (v2: shift augmentation, feature scale).
EXTRACTOR_VERSION = "v2"
FEATURE_DIM = 64
CNN_SEED = 0
CNN_TRAIN_STEPS = 1500
CNN_BATCH_SIZE = 64
CNN_LEARNING_RATE = 2e-3
# Test accuracy the feature CNN must reach, else training is an error: an
# extractor that cannot tell the classes apart makes FID meaningless.
MIN_TEST_ACCURACY = {"digits": 0.95, "mnist": 0.97, "usps": 0.90, "fashion_mnist": 0.85}
DEFAULT_MIN_TEST_ACCURACY = 0.80

INCEPTION_EXTRACTOR = "inception-v3-compat"
INCEPTION_WEIGHTS_ENV = "BENCHMARK_INCEPTION_WEIGHTS"

KID_MAX_SUBSET_SIZE = 1000
DEFAULT_MAX_REAL_SAMPLES = 10_000


class FeatureExtractorUnavailableError(FileNotFoundError):
    """A feature extractor's weights are not on disk and downloading is off."""


# ---------------------------------------------------------------------------
# The feature CNN
# ---------------------------------------------------------------------------

class FeatureCNN(nn.Module):
    """A small classifier whose penultimate layer (``FEATURE_DIM`` values, after ReLU) is the feature space.

    ``feature_scale`` (saved with the weights) divides the features so that
    they have unit mean square on the train split: torch-fidelity's KID uses a
    polynomial kernel (x·y/d + 1)³ made for features of order one, like
    Inception's. FID only changes by the constant factor.
    """

    def __init__(self, in_channels: int, num_classes: int, feature_dim: int = FEATURE_DIM):
        super().__init__()
        self.in_channels = in_channels
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.ReLU(),
            # 8×8 input -> 2×2 already; larger inputs are pooled to 2×2.
            nn.AdaptiveAvgPool2d(2), nn.Flatten(),
            nn.Linear(128 * 4, feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, num_classes)
        self.register_buffer("feature_scale", torch.ones(()))

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.body(x)
        return hidden / self.feature_scale, self.head(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _match_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    if images.shape[1] == channels:
        return images
    if images.shape[1] == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1)
    if images.shape[1] == 3 and channels == 1:
        # Grey images repeated to RGB come back exactly.
        return images.float().mean(dim=1, keepdim=True).round().to(torch.uint8)
    raise ValueError(f"cannot feed images with {images.shape[1]} channels to a {channels}-channel network")


@dataclass(frozen=True)
class CnnInfo:
    """A trained feature CNN as loaded in this process."""

    extractor_name: str      # the torch-fidelity registry name, e.g. "digits-cnn-v2"
    dataset: str
    state_dict: dict
    config: dict             # FeatureCNN arguments
    record: dict             # the JSON record: accuracies, training time, fingerprints
    weights_digest: str      # hash of the saved weights file
    trained: bool            # True when this call trained it (False: loaded from disk or memory)


class _CnnFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity adapter: uint8 N×C×H×W in, (penultimate features, logits) out."""

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)
        info = _CNN_BY_EXTRACTOR.get(name)
        if info is None:
            raise ValueError(f"feature extractor {name!r} has no weights loaded; call load_or_train_cnn first")
        self.net = FeatureCNN(**info.config)
        self.net.load_state_dict(info.state_dict)
        self.net.eval()

    @staticmethod
    def get_provided_features_list():
        return ("features", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "logits" if metric == "isc" else "features"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros((1, 1, 8, 8), dtype=torch.uint8)

    def forward(self, x):
        if not (torch.is_tensor(x) and x.dtype == torch.uint8 and x.dim() == 4):
            raise ValueError(f"expected uint8 images N×C×H×W, got {x.dtype if torch.is_tensor(x) else type(x)}")
        features, logits = self.net.features_and_logits(to_float(_match_channels(x, self.net.in_channels)))
        outputs = {"features": features, "logits": logits}
        return tuple(outputs[name] for name in self.features_list)


_CNN_BY_EXTRACTOR: dict[str, CnnInfo] = {}             # registry name -> weights (read by the adapter)
_CNN_MEMORY: dict[tuple[str, str], CnnInfo] = {}        # (dataset, cache dir) -> loaded CNN
_CNN_LOCK = threading.RLock()


def _accuracy(model: FeatureCNN, split: Split) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(split), 1024):
            logits = model(to_float(split.images[start:start + 1024]))
            correct += int((logits.argmax(dim=1) == split.labels[start:start + 1024]).sum())
    return correct / max(len(split), 1)


@contextmanager
def _single_thread():
    """Run small CPU work on one torch and one BLAS thread, then restore the caller's settings.

    The CNN's convolutions on 8×8 images gain nothing from more threads, and on
    a machine shared by several processes torch's spinning worker threads make
    them 10× slower (measured: 16 s on one thread vs 227 s on two, under load);
    one thread also makes the trained weights independent of the core count.
    """
    from threadpoolctl import threadpool_limits  # scikit-learn's dependency; KID's numpy matmuls

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(previous)


def _random_shift(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Translate a batch by up to H/8 pixels (at least 1), padding with black: a little augmentation
    that lifts digits test accuracy from about 96-98 % to about 98-99 %."""
    size = images.shape[-1]
    pad = max(1, images.shape[-2] // 8)
    padded = F.pad(images, (pad, pad, pad, pad), value=-1.0)
    dy, dx = torch.randint(0, 2 * pad + 1, (2,), generator=generator).tolist()
    return padded[:, :, dy:dy + images.shape[-2], dx:dx + size]


def _train_cnn(dataset: ImageDataset) -> tuple[FeatureCNN, dict]:
    """Train the feature CNN on ``dataset.train``: fixed seed, CPU, deterministic algorithms."""
    started = time.perf_counter()
    config = {"in_channels": dataset.image_shape[0], "num_classes": dataset.num_classes, "feature_dim": FEATURE_DIM}
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    # fork_rng: training must not move the caller's global RNG.
    with torch.random.fork_rng(devices=[]), _single_thread():
        torch.manual_seed(CNN_SEED)
        torch.use_deterministic_algorithms(True)
        try:
            model = FeatureCNN(**config)
            optimizer = torch.optim.Adam(model.parameters(), lr=CNN_LEARNING_RATE)
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=CNN_TRAIN_STEPS)
            generator = torch.Generator().manual_seed(CNN_SEED)
            train = dataset.train
            order = torch.randperm(len(train), generator=generator)
            position = 0
            model.train()
            for _ in range(CNN_TRAIN_STEPS):
                if position + CNN_BATCH_SIZE > len(order):  # a fresh permutation each epoch
                    order, position = torch.randperm(len(train), generator=generator), 0
                index = order[position:position + CNN_BATCH_SIZE]
                position += CNN_BATCH_SIZE
                images = _random_shift(to_float(train.images[index]), generator)
                loss = F.cross_entropy(model(images), train.labels[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
            model.eval()
            with torch.no_grad():
                hidden = torch.cat([model.body(to_float(train.images[i:i + 1024])) for i in range(0, len(train), 1024)])
                model.feature_scale.fill_(float(hidden.pow(2).mean().sqrt()))
        finally:
            torch.use_deterministic_algorithms(was_deterministic)
    record = {
        "dataset": dataset.name,
        "version": EXTRACTOR_VERSION,
        "config": config,
        "test_accuracy": _accuracy(model, dataset.test),
        "val_accuracy": _accuracy(model, dataset.val),
        "train_fingerprint": split_fingerprint(dataset.train),
        "split_seed": dataset.split_seed,
        "steps": CNN_TRAIN_STEPS,
        "batch_size": CNN_BATCH_SIZE,
        "seed": CNN_SEED,
        "train_seconds": round(time.perf_counter() - started, 3),
        "torch_version": torch.__version__,
    }
    return model, record


def _digest(path: Path) -> str:
    return hashlib.blake2b(path.read_bytes(), digest_size=8).hexdigest()


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _canonical_dataset(dataset: ImageDataset | str, root) -> ImageDataset:
    """The dataset with split seed 0: every split seed is compared in the same feature space."""
    if isinstance(dataset, ImageDataset):
        if dataset.split_seed == 0:
            return dataset
        return load_dataset(dataset.name, root=dataset.root if root is None else root, split_seed=0)
    return load_dataset(dataset, root=root, split_seed=0)


def load_or_train_cnn(dataset: ImageDataset | str, *, root=None) -> CnnInfo:
    """The feature CNN of ``dataset``: from memory, else from ``cache_dir()``, else trained now.

    The files are ``cache_dir()/feature_extractors/<dataset>-cnn-<VERSION>.pt``
    (state dict, read with ``weights_only=True``) and ``.json`` (record). A file
    trained on other data under the same name (different train-split hash) is
    retrained. Raises RuntimeError if the trained CNN misses its accuracy floor.
    """
    name = dataset.name if isinstance(dataset, ImageDataset) else dataset
    folder = cache_dir() / "feature_extractors"
    memory_key = (name, str(folder))
    with _CNN_LOCK:
        info = _CNN_MEMORY.get(memory_key)
        if info is not None:
            _CNN_BY_EXTRACTOR[info.extractor_name] = info
            return info

        from filelock import FileLock  # torch's own dependency

        canonical = _canonical_dataset(dataset, root)
        extractor_name = f"{name}-cnn-{EXTRACTOR_VERSION}"
        folder.mkdir(parents=True, exist_ok=True)
        weights_path, record_path = folder / f"{extractor_name}.pt", folder / f"{extractor_name}.json"
        # Parallel trials on one machine: one trains, the others wait and load.
        with FileLock(str(folder / f"{extractor_name}.lock")):
            record = json.loads(record_path.read_text()) if record_path.exists() else None
            if (
                record is not None
                and weights_path.exists()
                and record.get("train_fingerprint") == split_fingerprint(canonical.train)
            ):
                state_dict = torch.load(weights_path, map_location="cpu", weights_only=True)
                trained = False
            else:
                model, record = _train_cnn(canonical)
                floor = MIN_TEST_ACCURACY.get(name, DEFAULT_MIN_TEST_ACCURACY)
                if record["test_accuracy"] < floor:
                    raise RuntimeError(
                        f"feature CNN for {name!r} reached {record['test_accuracy']:.3f} test accuracy, "
                        f"below the required {floor:.2f}; FID in its features would not be meaningful"
                    )
                state_dict = {k: v.detach().clone() for k, v in model.state_dict().items()}
                _atomic_write(weights_path, lambda tmp: torch.save(state_dict, tmp))
                _atomic_write(record_path, lambda tmp: tmp.write_text(json.dumps(record, indent=2) + "\n"))
                trained = True
        info = CnnInfo(
            extractor_name=extractor_name, dataset=name, state_dict=state_dict, config=record["config"],
            record=record, weights_digest=_digest(weights_path), trained=trained,
        )
        _CNN_MEMORY[memory_key] = replace(info, trained=False)  # later calls did not train it
        _CNN_BY_EXTRACTOR[extractor_name] = info
        if extractor_name not in FEATURE_EXTRACTORS_REGISTRY:
            torch_fidelity.register_feature_extractor(extractor_name, _CnnFeatureExtractor)
        return info


def forget_loaded_cnns() -> None:
    """Drop the in-memory CNNs so the next call reads the files again (tests, long-lived workers)."""
    with _CNN_LOCK:
        _CNN_MEMORY.clear()


def classifier_accuracy(dataset_name: str, *, root=None) -> float:
    """The recorded test accuracy of ``dataset_name``'s feature CNN (trained first if absent)."""
    return float(load_or_train_cnn(dataset_name, root=root).record["test_accuracy"])


# ---------------------------------------------------------------------------
# Inception weights
# ---------------------------------------------------------------------------

def inception_weights_path(weights_path=None, *, download: bool = False) -> str | None:
    """The Inception weights file to use: ``weights_path``, else ``$BENCHMARK_INCEPTION_WEIGHTS``,
    else torch hub's copy (``<torch hub dir>/checkpoints/<file>``), else None when ``download``
    (torch-fidelity then downloads it there). Otherwise a clear error."""
    hub_file = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(URL_INCEPTION_V3)
    source, candidate = "weights_path", weights_path
    if candidate is None and os.environ.get(INCEPTION_WEIGHTS_ENV, "").strip():
        source, candidate = f"${INCEPTION_WEIGHTS_ENV}", os.environ[INCEPTION_WEIGHTS_ENV].strip()
    if candidate is not None:
        path = Path(candidate).expanduser()
        if not path.is_file():
            raise FeatureExtractorUnavailableError(
                f"Inception weights file {path} (from {source}) does not exist; point it at "
                f"{os.path.basename(URL_INCEPTION_V3)} downloaded from {URL_INCEPTION_V3}"
            )
        return str(path)
    if hub_file.is_file():
        return str(hub_file)
    if download:
        return None
    raise FeatureExtractorUnavailableError(
        f"FID/KID on RGB images needs torch-fidelity's Inception-v3 weights and downloading is off. "
        f"Put the file {os.path.basename(URL_INCEPTION_V3)} (from {URL_INCEPTION_V3}) at {hub_file}, "
        f"or set {INCEPTION_WEIGHTS_ENV}=/path/to/it (or pass weights_path=), "
        f"or allow the download with download_weights=True."
    )


# ---------------------------------------------------------------------------
# The evaluator
# ---------------------------------------------------------------------------

class _ImagesForFidelity(torch.utils.data.Dataset):
    """uint8 images, one N×C×H×W tensor, in the channel count the extractor wants."""

    def __init__(self, images: torch.Tensor, channels: int):
        self.images = images
        self.channels = channels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = self.images[index]
        return image.expand(3, -1, -1) if self.channels == 3 and image.shape[0] == 1 else image


class FidelityEvaluator:
    """FID and KID of generated images against one split of a real dataset.

    Cheap to construct once the feature extractor is trained or its weights
    found (the CNN is cached per process, the real statistics on disk).

    ``extractor``: "auto" (grey-scale data -> the dataset's CNN, RGB ->
    Inception), "cnn" or "inception". ``weights_path`` (or
    ``$BENCHMARK_INCEPTION_WEIGHTS``) is the Inception weights file.
    ``kid_subset_size`` defaults to min(1000, fake count, real count).
    ``max_real_samples`` caps the real side (a fixed subset) for large splits.
    ``device``: "cpu" or "cuda" (torch-fidelity uses the current CUDA device).
    """

    def __init__(
        self,
        dataset: ImageDataset,
        *,
        extractor: str = "auto",
        weights_path=None,
        kid_subset_size: int | None = None,
        device="cpu",
        kid_subsets: int = 100,
        max_real_samples: int = DEFAULT_MAX_REAL_SAMPLES,
        batch_size: int | None = None,
        download_weights: bool = False,
    ):
        if not isinstance(dataset, ImageDataset):
            raise ValueError(f"dataset must be an ImageDataset, got {type(dataset).__name__}")
        if extractor not in ("auto", "cnn", "inception"):
            raise ValueError(f"extractor must be 'auto', 'cnn' or 'inception', got {extractor!r}")
        if kid_subset_size is not None and (not isinstance(kid_subset_size, int) or kid_subset_size < 2):
            raise ValueError(f"kid_subset_size must be an int >= 2 or None, got {kid_subset_size!r}")
        if not isinstance(kid_subsets, int) or kid_subsets < 1:
            raise ValueError(f"kid_subsets must be a positive int, got {kid_subsets!r}")
        if not isinstance(max_real_samples, int) or max_real_samples < 2:
            raise ValueError(f"max_real_samples must be an int >= 2, got {max_real_samples!r}")
        device = torch.device(device)
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device}")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device='cuda' but CUDA is not available")

        self.dataset = dataset
        self.kind = extractor if extractor != "auto" else ("cnn" if dataset.image_shape[0] == 1 else "inception")
        self.kid_subset_size = kid_subset_size
        self.kid_subsets = kid_subsets
        self.max_real_samples = max_real_samples
        self.cuda = device.type == "cuda"
        self._cnn = None
        if self.kind == "cnn":
            info = self._cnn = load_or_train_cnn(dataset)
            self.extractor_name = info.extractor_name
            self.extractor_tag = f"{info.extractor_name}-{info.weights_digest}"
            self.channels = info.config["in_channels"]
            self.weights_path = None
            self.batch_size = batch_size or 1000
        else:
            self.extractor_name = INCEPTION_EXTRACTOR
            self.extractor_tag = INCEPTION_EXTRACTOR
            self.channels = 3
            self.weights_path = inception_weights_path(weights_path, download=download_weights)
            self.batch_size = batch_size or 64

    def real_cache_name(self, split: str) -> str:
        """torch-fidelity cache name of the real side: everything that changes its features."""
        real = self.dataset.split(split)
        count = min(len(real), self.max_real_samples)
        return (
            f"{self.dataset.name}-{split}-seed{self.dataset.split_seed}-{split_fingerprint(real)}"
            f"-n{count}-{self.extractor_tag}"
        )

    def _real_images(self, split: str) -> torch.Tensor:
        real = self.dataset.split(split)
        if len(real) <= self.max_real_samples:
            return real.images
        # A fixed subset (seed 0), so the cached statistics stay valid.
        keep = np.sort(np.random.default_rng(0).choice(len(real), self.max_real_samples, replace=False))
        return real.images[torch.from_numpy(keep)]

    def evaluate(self, fake_images: torch.Tensor, split: str) -> dict[str, float]:
        """FID and KID of ``fake_images`` (float in [-1, 1], N×C×H×W) against the real ``split``."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        if not isinstance(fake_images, torch.Tensor) or fake_images.dim() != 4:
            raise ValueError("fake_images must be a float tensor N×C×H×W")
        if tuple(fake_images.shape[1:]) != self.dataset.image_shape:
            raise ValueError(
                f"fake_images have shape {tuple(fake_images.shape[1:])} per image, "
                f"dataset {self.dataset.name!r} has {self.dataset.image_shape}"
            )
        if len(fake_images) < 2:
            raise ValueError("fake_images must hold at least 2 images")
        real = self._real_images(split)
        subset = self.kid_subset_size or min(KID_MAX_SUBSET_SIZE, len(fake_images), len(real))
        if subset > min(len(fake_images), len(real)):
            raise ValueError(
                f"kid_subset_size={subset} exceeds the samples available "
                f"({len(fake_images)} generated, {len(real)} real in {split!r})"
            )
        if self._cnn is not None:
            # torch-fidelity builds the extractor from its registry name: make that name mean this
            # evaluator's weights (another cache dir may have loaded other ones since).
            _CNN_BY_EXTRACTOR[self.extractor_name] = self._cnn
        small_cpu_work = self._cnn is not None and not self.cuda
        with _single_thread() if small_cpu_work else nullcontext():
            fake = to_uint8(fake_images.detach().cpu())
            result = self._calculate(fake, real, split, subset)
        return {
            "fid": float(result[torch_fidelity.KEY_METRIC_FID]),
            "kid_mean": float(result[torch_fidelity.KEY_METRIC_KID_MEAN]),
            "kid_std": float(result[torch_fidelity.KEY_METRIC_KID_STD]),
        }

    def _calculate(self, fake: torch.Tensor, real: torch.Tensor, split: str, subset: int) -> dict:
        return torch_fidelity.calculate_metrics(
            input1=_ImagesForFidelity(fake, self.channels),
            input2=_ImagesForFidelity(real, self.channels),
            input2_cache_name=self.real_cache_name(split),
            cache_root=str(cache_dir() / "fidelity"),
            fid=True,
            kid=True,
            feature_extractor=self.extractor_name,
            feature_extractor_weights_path=self.weights_path,
            kid_subset_size=subset,
            kid_subsets=self.kid_subsets,
            batch_size=self.batch_size,
            cuda=self.cuda,
            save_cpu_ram=True,  # no DataLoader worker processes: the images are already in memory
            verbose=False,
        )
