"""Where datasets and caches live on disk.

Two environment variables let a cluster point every worker at shared storage:

- ``BENCHMARK_DATA_DIR``  — root of the torchvision dataset files
  (default ``~/.cache/gapaware-bench/data``);
- ``BENCHMARK_CACHE_DIR`` — trained feature extractors, torch-fidelity
  statistics, decoded images (default ``~/.cache/gapaware-bench``).
"""
from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "BENCHMARK_DATA_DIR"
CACHE_DIR_ENV = "BENCHMARK_CACHE_DIR"
_DEFAULT_CACHE = Path("~/.cache/gapaware-bench")


def _from_env(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else None


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The dataset root: ``root`` if given, else ``$BENCHMARK_DATA_DIR``, else the default.

    Not created here: torchvision creates it when it downloads, and a missing
    directory is reported by the loader as a missing dataset.
    """
    if root is not None:
        if str(root).strip() == "":
            raise ValueError("data root must be a non-empty path (or None to use $BENCHMARK_DATA_DIR)")
        return Path(root).expanduser()
    return _from_env(DATA_DIR_ENV) or (_DEFAULT_CACHE / "data").expanduser()


def cache_dir() -> Path:
    """The cache root ``$BENCHMARK_CACHE_DIR`` (else ``~/.cache/gapaware-bench``), created on demand."""
    path = _from_env(CACHE_DIR_ENV) or _DEFAULT_CACHE.expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path
