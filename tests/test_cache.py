"""The verified mesh cache (retrieve/cache.py): keys, round trips, damage, aliases, LRU prune."""

from __future__ import annotations

import os
import zipfile

import numpy as np

from mesh_export.retrieve.cache import MeshCache, cache_key


def _mesh(n=50):
    rng = np.random.default_rng(n)
    return rng.random((n, 3), dtype=np.float32) * 1e5, rng.integers(0, n, size=(2 * n, 3)).astype(np.int32)


def test_cache_round_trip_keeps_float32_int32(tmp_path):
    cache = MeshCache(tmp_path)
    vertices, faces = _mesh()
    key = cache_key(source="s", root_id=1)
    cache.put(key, vertices, faces, {"lod": 0})
    entry = cache.get(key)
    assert entry.vertices.dtype == np.float32 and entry.faces.dtype == np.int32
    np.testing.assert_array_equal(entry.vertices, vertices)
    np.testing.assert_array_equal(entry.faces, faces)
    assert entry.meta == {"lod": 0}
    # A plain .npz that numpy reads (never pickle).
    with np.load(cache.path(key), allow_pickle=False) as data:
        np.testing.assert_array_equal(data["faces"], faces)


def test_cache_keys_differ_by_every_part():
    base = dict(source="s", root_id=1, lod=0, version=943)
    keys = {cache_key(**base), cache_key(**{**base, "lod": 1}), cache_key(**{**base, "version": 1300}),
            cache_key(**{**base, "root_id": 2}), cache_key(**{**base, "source": "t"})}
    assert len(keys) == 5


def test_a_damaged_entry_is_dropped_not_served(tmp_path):
    cache = MeshCache(tmp_path)
    vertices, faces = _mesh()
    key = cache_key(source="s", root_id=1)
    path = cache.put(key, vertices, faces, {})
    blob = bytearray(path.read_bytes())
    # Flip a byte inside the vertex array's data (past the zip and npy headers).
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("vertices.npy")
    blob[info.header_offset + 30 + len(info.filename) + 200] ^= 0xFF
    path.write_bytes(bytes(blob))
    assert cache.get(key) is None and not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PK\x03\x04 truncated")
    assert cache.get(key) is None and not path.exists()


def test_cache_alias_prune_and_clear(tmp_path):
    cache = MeshCache(tmp_path)
    vertices, faces = _mesh()
    keys = [cache_key(root_id=i) for i in range(3)]
    for k, key in enumerate(keys):
        cache.put(key, vertices, faces, {"k": k})
        os.utime(cache.path(key), (1000 + k, 1000 + k))
    alias = cache_key(root_id=0, lod=-1)
    cache.alias(alias, keys[0])
    assert cache.get(alias).meta == {"k": 0}  # and reading it makes entry 0 the most recent
    size = cache.path(keys[0]).stat().st_size
    report = cache.prune(max_bytes=size)
    assert report["removed"] == 2 and cache.get(keys[0]) is not None and cache.get(keys[1]) is None
    assert cache.clear() == 1 and cache.entries() == []
