"""A verified disk cache of decoded meshes.

One ``.npz`` per entry (numpy arrays and a JSON string; never pickle), keyed by a hash of
everything that changes the mesh. Each entry stores a checksum of its arrays and metadata
(XXH3-128; entries written before it carry SHA-256, still honoured), checked on every read: a
corrupt or truncated entry is deleted and reported as a miss, never served. XXH3 is not a
cryptographic hash, and need not be: it guards against damage (truncation, bad sectors,
a half-copied cache), and it is ~20x faster than SHA-256, which would otherwise be the
largest cost of serving a big mesh from the cache. Entries are written to a temporary file and renamed into place; reads touch the
file's mtime so ``prune`` can drop the least recently used first.

An alias (a tiny text file naming another key) lets a second request for the same mesh,
such as "the coarsest lod", share an entry instead of storing a copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from mesh_export.core.atomic import replaced_file

CACHE_ENV = "MESH_EXPORT_CACHE"
# Bumped when the entry layout or the fetch semantics change, so old entries are not used.
CACHE_FORMAT = 1
_KEY = re.compile(r"^[0-9a-f]{64}$")


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mesh-export"))


def cache_key(**parts: Any) -> str:
    payload = json.dumps({"format": CACHE_FORMAT, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def _digest(vertices: np.ndarray, faces: np.ndarray, meta: bytes, algorithm: str = "xxh3_128") -> str:
    h = xxhash.xxh3_128() if algorithm == "xxh3_128" else hashlib.sha256()
    for array in (vertices, faces):
        h.update(str(array.dtype).encode() + str(array.shape).encode())
        h.update(np.ascontiguousarray(array).data)
    h.update(meta)
    return h.hexdigest()


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` whose members are stored uncompressed (``np.savez``), each
    read straight into its array with one ``readinto``. ``np.load`` copies through zipfile's
    256 KiB reads and CRC-32s every byte (the entry's own checksum covers that): ~4x slower on
    a 24 MB entry. Anything unexpected raises, which the caller treats as a damaged entry."""
    arrays = {}
    with open(path, "rb") as handle:
        with zipfile.ZipFile(handle) as archive:
            members = archive.infolist()
        for member in members:
            if member.compress_type != zipfile.ZIP_STORED or not member.filename.endswith(".npy"):
                raise ValueError(f"unexpected member {member.filename!r}")
            handle.seek(member.header_offset)
            local = handle.read(30)
            if len(local) != 30 or local[:4] != b"PK\x03\x04":
                raise ValueError("bad zip local header")
            name_length, extra_length = struct.unpack("<HH", local[26:30])
            start = member.header_offset + 30 + name_length + extra_length
            handle.seek(start)
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            if dtype.hasobject:
                raise ValueError("object arrays are never cached")
            array = np.empty(shape, dtype=dtype, order="F" if fortran_order else "C")
            if handle.tell() - start + array.nbytes != member.file_size:
                raise ValueError(f"{member.filename} size does not match its header")
            if handle.readinto(memoryview(array.reshape(-1, order="A")).cast("B")) != array.nbytes:
                raise ValueError(f"{member.filename} is truncated")
            arrays[member.filename[:-4]] = array
    return arrays


@dataclass
class Entry:
    vertices: np.ndarray
    faces: np.ndarray
    meta: dict[str, Any]


class MeshCache:
    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory) if directory else default_cache_dir()

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.npz"

    def _alias_path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.alias"

    def get(self, key: str) -> Entry | None:
        """The entry stored under ``key``, or under the key it is an alias of."""
        path = self.path(key)
        if not path.is_file():
            target = self._resolve_alias(key)
            path = self.path(target) if target else path
        if not path.is_file():
            return None
        try:
            data = _read_npz(path)
            vertices, faces = data["vertices"], data["faces"]
            meta_bytes = data["meta"].tobytes()
            algorithm = "xxh3_128" if "xxh3_128" in data else "sha256"
            if _digest(vertices, faces, meta_bytes, algorithm) != data[algorithm].tobytes().decode():
                raise ValueError("checksum mismatch")
            meta = json.loads(meta_bytes)
        except OSError:
            return None  # unreadable just now (permissions, too many open files): not proof of damage
        except Exception:
            # Truncated, corrupt or foreign (bad zip, missing array, checksum mismatch, bad
            # JSON): drop it so the caller refetches.
            path.unlink(missing_ok=True)
            return None
        try:
            os.utime(path)
        except OSError:
            pass
        return Entry(vertices, faces, meta)

    def put(self, key: str, vertices: np.ndarray, faces: np.ndarray, meta: dict[str, Any]) -> Path:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        vertices = np.ascontiguousarray(vertices, dtype=np.float32)
        # int32 indices halve the entry (and its load and checksum time) for any real mesh.
        faces = np.ascontiguousarray(faces, dtype=np.int32 if len(vertices) < 2**31 else np.int64)
        meta_bytes = json.dumps(meta, sort_keys=True, default=str).encode()
        digest = _digest(vertices, faces, meta_bytes)
        with replaced_file(path, "wb") as handle:
            np.savez(handle, vertices=vertices, faces=faces,
                     meta=np.frombuffer(meta_bytes, dtype=np.uint8),
                     xxh3_128=np.frombuffer(digest.encode(), dtype=np.uint8))
        return path

    def alias(self, key: str, target: str) -> None:
        """Serve ``target``'s entry under ``key`` too, without a second copy of the mesh."""
        path = self._alias_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with replaced_file(path, "w") as handle:
            handle.write(target)

    def _resolve_alias(self, key: str) -> str | None:
        try:
            target = self._alias_path(key).read_text().strip()
        except OSError:
            return None
        # Anything but another key (a damaged file) is ignored: the caller refetches.
        return target if _KEY.match(target) else None

    def entries(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("??/*.npz"))

    def info(self) -> dict[str, Any]:
        files = self.entries()
        return {"directory": str(self.directory), "entries": len(files),
                "bytes": sum(f.stat().st_size for f in files)}

    def clear(self) -> int:
        files = self.entries()
        for f in files:
            f.unlink(missing_ok=True)
        for stale in self.directory.glob("??/*.alias") if self.directory.is_dir() else []:
            stale.unlink(missing_ok=True)
        for stale in self.directory.glob("??/.*.part") if self.directory.is_dir() else []:
            stale.unlink(missing_ok=True)
        return len(files)

    def prune(self, max_bytes: int) -> dict[str, int]:
        """Delete least recently used entries until the cache holds at most ``max_bytes``."""
        files = sorted(self.entries(), key=lambda f: f.stat().st_mtime)
        sizes = {f: f.stat().st_size for f in files}
        total = sum(sizes.values())
        removed = 0
        for f in files:
            if total <= max_bytes:
                break
            f.unlink(missing_ok=True)
            total -= sizes[f]
            removed += 1
        return {"removed": removed, "entries": len(files) - removed, "bytes": total}
