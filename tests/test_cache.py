"""The verified mesh cache (retrieve/cache.py): keys, round trips, damage (checksum mismatch,
truncation, foreign entries) dropped and never served, atomic entries, aliases, LRU prune."""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile

import numpy as np
import pytest

from mesh_export.retrieve import cache as cache_module
from mesh_export.retrieve.cache import CACHE_ENV, MeshCache, _digest, cache_key


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


# ------------------------------------------------------------------------------ keys and layout


def test_keys_are_stable_hex_and_independent_of_argument_order():
    key = cache_key(source="s", root_id=1, lod=0)
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert cache_key(lod=0, root_id=1, source="s") == key  # same parts, any order
    assert cache_key(source="s", root_id=1, lod=0) == key  # deterministic (no salt, no time)
    assert cache_key(source="s", root_id="1", lod=0) != key  # a part's type is part of it


def test_the_cache_format_version_is_part_of_every_key(monkeypatch):
    key = cache_key(root_id=1)
    monkeypatch.setattr(cache_module, "CACHE_FORMAT", cache_module.CACHE_FORMAT + 1)
    assert cache_key(root_id=1) != key  # a layout change never serves old entries


def test_entries_live_in_two_hex_digit_folders(tmp_path):
    cache = MeshCache(tmp_path)
    key = cache_key(root_id=7)
    assert cache.path(key) == tmp_path / key[:2] / f"{key}.npz"
    assert cache.get(key) is None  # nothing there yet: a miss, no error
    assert MeshCache(tmp_path / "never-made").entries() == []


def test_the_default_directory(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "here"))
    assert MeshCache().directory == tmp_path / "here"
    monkeypatch.delenv(CACHE_ENV)
    from platformdirs import user_cache_dir

    assert MeshCache().directory == cache_module.Path(user_cache_dir("mesh-export"))


def test_put_converts_to_float32_and_int32(tmp_path):
    cache = MeshCache(tmp_path)
    vertices, faces = _mesh()
    key = cache_key(root_id=1)
    cache.put(key, vertices.astype(np.float64), faces.astype(np.int64), {"units": "nm", "ids": (1, 2)})
    entry = cache.get(key)
    assert entry.vertices.dtype == np.float32 and entry.faces.dtype == np.int32
    np.testing.assert_array_equal(entry.faces, faces)
    assert entry.meta == {"units": "nm", "ids": [1, 2]}  # the metadata is JSON


# ------------------------------------------------------------------------------ damage


def _rewrite(path, **arrays):
    """Rewrite an entry's members (the others kept) with np.savez, as a damaged copy would be."""
    with np.load(path, allow_pickle=False) as data:
        members = {name: data[name] for name in data.files}
    members.update(arrays)
    for name in [n for n, v in members.items() if v is None]:
        del members[name]
    with open(path, "wb") as handle:
        np.savez(handle, **members)


def _stored(tmp_path):
    cache = MeshCache(tmp_path)
    vertices, faces = _mesh()
    key = cache_key(root_id=1)
    return cache, key, cache.put(key, vertices, faces, {"lod": 0}), vertices, faces


def test_a_checksum_mismatch_is_dropped_not_served(tmp_path):
    cache, key, path, vertices, faces = _stored(tmp_path)
    moved = vertices.copy()
    moved[0, 0] += 1.0  # a well-formed entry whose data no longer matches its checksum
    _rewrite(path, vertices=moved)
    assert cache.get(key) is None and not path.exists()


def test_changed_metadata_fails_the_checksum_too(tmp_path):
    cache, key, path, *_ = _stored(tmp_path)
    _rewrite(path, meta=np.frombuffer(json.dumps({"lod": 1}).encode(), dtype=np.uint8))
    assert cache.get(key) is None and not path.exists()


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_a_truncated_entry_is_dropped(tmp_path, fraction):
    cache, key, path, *_ = _stored(tmp_path)
    blob = path.read_bytes()
    path.write_bytes(blob[: int(len(blob) * fraction)])
    assert cache.get(key) is None and not path.exists()
    cache.put(key, *_mesh(), {"lod": 0})  # and the refetched mesh is cached again
    assert cache.get(key).meta == {"lod": 0}


@pytest.mark.parametrize("damage", ["no checksum", "no faces", "bad json", "compressed", "object array"])
def test_a_foreign_or_incomplete_entry_is_dropped(tmp_path, damage):
    cache, key, path, vertices, faces = _stored(tmp_path)
    if damage == "no checksum":
        _rewrite(path, xxh3_128=None)
    elif damage == "no faces":
        _rewrite(path, faces=None)
    elif damage == "bad json":
        meta = b"{not json"
        _rewrite(path, meta=np.frombuffer(meta, dtype=np.uint8),
                 xxh3_128=np.frombuffer(_digest(vertices, faces, meta).encode(), dtype=np.uint8))
    elif damage == "compressed":
        with np.load(path) as data:
            members = {name: data[name] for name in data.files}
        np.savez_compressed(path, **members)  # valid data, but not the layout the reader expects
    else:
        with open(path, "wb") as handle:
            np.savez(handle, vertices=np.array([object()], dtype=object), faces=faces)
    assert cache.get(key) is None and not path.exists()


def test_entries_with_a_sha256_checksum_are_still_honoured(tmp_path):
    cache, key, path, vertices, faces = _stored(tmp_path)
    meta = json.dumps({"lod": 0}, sort_keys=True).encode()
    digest = _digest(vertices, faces, meta, "sha256")
    assert len(digest) == len(hashlib.sha256().hexdigest())
    _rewrite(path, xxh3_128=None, sha256=np.frombuffer(digest.encode(), dtype=np.uint8))
    assert cache.get(key).meta == {"lod": 0}
    _rewrite(path, sha256=np.frombuffer(("0" * 64).encode(), dtype=np.uint8))
    assert cache.get(key) is None and not path.exists()


def test_an_unreadable_entry_is_a_miss_but_is_kept(tmp_path, monkeypatch):
    cache, key, path, *_ = _stored(tmp_path)

    def refuse(path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cache_module, "_read_npz", refuse)
    assert cache.get(key) is None and path.exists()  # not proof of damage: not deleted
    monkeypatch.undo()
    assert cache.get(key) is not None


# ------------------------------------------------------------------------------ atomic entries


def test_put_writes_atomically_and_a_failed_put_keeps_the_old_entry(tmp_path, monkeypatch):
    cache, key, path, vertices, faces = _stored(tmp_path)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary left

    def crash(handle, **arrays):
        handle.write(b"PK\x03\x04 half an entry")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_module.np, "savez", crash)
    with pytest.raises(OSError):
        cache.put(key, vertices * 2, faces, {"lod": 9})
    monkeypatch.undo()
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    entry = cache.get(key)
    assert entry.meta == {"lod": 0}
    np.testing.assert_array_equal(entry.vertices, vertices)


def test_a_second_put_replaces_the_entry(tmp_path):
    cache, key, path, vertices, faces = _stored(tmp_path)
    cache.put(key, vertices[:10], faces[:5] % 10, {"lod": 1})
    entry = cache.get(key)
    assert len(entry.vertices) == 10 and entry.meta == {"lod": 1}
    assert cache.entries() == [path]


# ------------------------------------------------------------------------------ aliases


def test_an_alias_shares_the_entry_and_a_bad_alias_is_a_miss(tmp_path):
    cache, key, path, *_ = _stored(tmp_path)
    alias = cache_key(root_id=1, lod=-1)
    cache.alias(alias, key)
    assert cache.get(alias).meta == {"lod": 0}
    assert cache.entries() == [path]  # no second copy of the mesh
    assert cache.info()["entries"] == 1
    cache._alias_path(alias).write_text("../../etc/passwd")  # a damaged alias names no key
    assert cache.get(alias) is None and path.exists()
    cache.alias(alias, cache_key(root_id=99))  # an alias of an entry that is gone
    assert cache.get(alias) is None


# ------------------------------------------------------------------------------ prune, clear, info


def _filled(tmp_path, sizes):
    """A cache with one entry per size (vertex count), oldest first; their paths."""
    cache = MeshCache(tmp_path)
    paths = []
    for k, n in enumerate(sizes):
        key = cache_key(root_id=k)
        paths.append(cache.put(key, *_mesh(n), {"k": k}))
        os.utime(paths[-1], (1000 + k, 1000 + k))
    return cache, paths


def test_prune_removes_the_least_recently_used_until_the_size_fits(tmp_path):
    cache, paths = _filled(tmp_path, [40, 80, 120, 160, 200])
    sizes = [p.stat().st_size for p in paths]
    assert cache.info() == {"directory": str(tmp_path), "entries": 5, "bytes": sum(sizes)}
    cache.get(cache_key(root_id=0))  # reading the oldest makes it the most recent
    # Room for the three newest by use (3, 4 and 0): 1 and 2 go, the least recently used.
    budget = sizes[0] + sizes[3] + sizes[4]
    report = cache.prune(max_bytes=budget)
    assert report == {"removed": 2, "entries": 3, "bytes": budget}
    assert [p.exists() for p in paths] == [True, False, False, True, True]
    assert cache.prune(max_bytes=budget) == {"removed": 0, "entries": 3, "bytes": budget}
    # One byte under: the next least recently used (3) goes, not the biggest.
    assert cache.prune(max_bytes=budget - 1)["removed"] == 1 and not paths[3].exists()
    assert cache.prune(max_bytes=0) == {"removed": 2, "entries": 0, "bytes": 0}
    assert cache.entries() == []


def test_clear_removes_entries_aliases_and_stale_temporaries(tmp_path):
    cache, paths = _filled(tmp_path, [30, 30])
    cache.alias(cache_key(alias=1), cache_key(root_id=0))
    stale = paths[0].parent / f".{paths[0].name}.0123456789abcdef.part"
    stale.write_bytes(b"left by a crash")
    assert cache.clear() == 2
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    assert cache.info()["entries"] == 0 and cache.info()["bytes"] == 0
    assert MeshCache(tmp_path / "never-made").clear() == 0
