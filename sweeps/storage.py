"""Where a study's results live: a local directory or an ``s3://`` / ``gs://`` URI.

Everything goes through :mod:`pyarrow.fs`, so the same code writes to a
laptop's disk, an NFS share of a cluster, or a bucket. Writes are atomic: a
file is written under a temporary name next to its destination and then
moved over it (a rename on local disks; object stores publish an object whole).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

__all__ = ["SUPPORTED_SCHEMES", "Location", "check_location"]

# Schemes pyarrow reaches without extra packages; anything else is a typo or
# a store this harness has not been tested against.
SUPPORTED_SCHEMES = ("file", "s3", "gs", "gcs")


def check_location(text: str) -> str:
    """Return ``text`` if it names a directory or a supported URI; raise ``ValueError`` otherwise.

    Does not touch the network: credentials and buckets are checked when
    the study starts writing.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("must be a directory path or an s3:// or gs:// URI, got an empty value")
    if "://" in text:
        scheme, rest = text.split("://", 1)
        if scheme.lower() not in SUPPORTED_SCHEMES:
            raise ValueError(
                f"unsupported URI scheme {scheme + '://'!r} in {text!r}; "
                "use a directory path, s3://bucket/prefix or gs://bucket/prefix"
            )
        if scheme.lower() != "file" and not rest.strip("/"):
            raise ValueError(f"{text!r} names no bucket; use {scheme}://bucket/prefix")
    return text


@dataclass(frozen=True)
class Location:
    """A directory on some filesystem: ``fs`` and the path of the directory inside it."""

    fs: pafs.FileSystem
    path: str
    uri: str  # how to show it to a person (and to hand it to another process)

    @classmethod
    def parse(cls, text: str) -> "Location":
        """A location from a directory path (relative paths: from the current directory) or a URI."""
        check_location(text)
        if "://" not in text:
            local = str(Path(text).expanduser().resolve())
            return cls(pafs.LocalFileSystem(), local, local)
        fs, path = pafs.FileSystem.from_uri(text)
        return cls(fs, path.rstrip("/"), text.rstrip("/"))

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def child(self, *parts: str) -> "Location":
        joined = "/".join([self.path, *parts])
        return Location(self.fs, joined, "/".join([self.uri, *parts]))

    def file(self, name: str) -> str:
        """Path (inside ``fs``) of the file ``name`` in this directory."""
        return f"{self.path}/{name}"

    # -- reading -----------------------------------------------------------------------------------

    def exists(self, name: str = "") -> bool:
        target = self.file(name) if name else self.path
        return self.fs.get_file_info(target).type != pafs.FileType.NotFound

    def read_bytes(self, name: str) -> bytes:
        with self.fs.open_input_stream(self.file(name)) as stream:
            return stream.readall()

    def read_table(self, name: str) -> pa.Table:
        with self.fs.open_input_file(self.file(name)) as handle:
            return pq.read_table(handle)

    def list_files(self, suffix: str = "") -> list[str]:
        """Names of the plain files directly in this directory (none if it does not exist)."""
        if not self.exists():
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.path, recursive=False))
        return sorted(
            info.base_name
            for info in infos
            if info.type == pafs.FileType.File and info.base_name.endswith(suffix) and ".tmp-" not in info.base_name
        )

    # -- writing (atomic) --------------------------------------------------------------------------

    def makedirs(self) -> None:
        self.fs.create_dir(self.path, recursive=True)

    def _publish(self, name: str, write) -> None:
        self.makedirs()
        final = self.file(name)
        temporary = f"{final}.tmp-{uuid.uuid4().hex[:12]}"
        try:
            write(temporary)
            self.fs.move(temporary, final)
        except BaseException:
            try:
                self.fs.delete_file(temporary)
            except OSError:
                pass
            raise

    def write_bytes(self, name: str, data: bytes) -> None:
        def write(path: str) -> None:
            with self.fs.open_output_stream(path) as stream:
                stream.write(data)

        self._publish(name, write)

    def write_table(self, name: str, table: pa.Table) -> None:
        def write(path: str) -> None:
            with self.fs.open_output_stream(path) as stream:
                pq.write_table(table, stream)

        self._publish(name, write)

    def delete(self, name: str) -> None:
        try:
            self.fs.delete_file(self.file(name))
        except FileNotFoundError:
            pass

    def delete_tree(self) -> None:
        """Remove this directory and everything in it (nothing happens if it does not exist)."""
        if self.exists():
            self.fs.delete_dir(self.path)

    def __str__(self) -> str:
        return self.uri


def local_path(location: Location) -> Path:
    """The local directory of a local location (``ValueError`` for a bucket)."""
    if not location.is_local:
        raise ValueError(f"{location.uri} is not a local directory")
    return Path(os.fspath(location.path))
