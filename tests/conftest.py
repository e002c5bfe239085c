"""Shared test fixtures.

The whole test session runs against private directories: ``BENCHMARK_CACHE_DIR``
points at one session temp dir (so all test files share one trained digits
feature CNN and one torch-fidelity cache, and the user's cache is untouched)
and ``BENCHMARK_DATA_DIR`` at an empty one (so no test reads, or depends on,
datasets the machine happens to have).
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session", autouse=True)
def benchmark_dirs(tmp_path_factory):
    """Session-wide BENCHMARK_CACHE_DIR and (empty) BENCHMARK_DATA_DIR; yields (cache, data)."""
    cache = tmp_path_factory.mktemp("benchmark-cache")
    data = tmp_path_factory.mktemp("benchmark-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENCHMARK_CACHE_DIR", str(cache))
        patch.setenv("BENCHMARK_DATA_DIR", str(data))
        yield cache, data


def _write_idx(path: Path, array: np.ndarray) -> None:
    """One file in the idx format of MNIST (big-endian header, unsigned bytes)."""
    assert array.dtype == np.uint8
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


@pytest.fixture
def write_mnist_files():
    """Write a dataset in MNIST's on-disk format: ``write(root, "MNIST" | "FashionMNIST", train_images,
    train_labels, test_images, test_labels)`` creates ``<root>/<cls>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``
    (images uint8 N×28×28, labels uint8 N), the files torchvision's MNIST class reads."""

    def write(root: Path, cls_name: str, train_images, train_labels, test_images, test_labels) -> Path:
        raw = Path(root) / cls_name / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        _write_idx(raw / "train-images-idx3-ubyte", np.asarray(train_images, dtype=np.uint8))
        _write_idx(raw / "train-labels-idx1-ubyte", np.asarray(train_labels, dtype=np.uint8))
        _write_idx(raw / "t10k-images-idx3-ubyte", np.asarray(test_images, dtype=np.uint8))
        _write_idx(raw / "t10k-labels-idx1-ubyte", np.asarray(test_labels, dtype=np.uint8))
        return raw

    return write
