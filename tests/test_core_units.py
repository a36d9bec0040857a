"""Unit tests of the small modules everything stands on: atomic output, units, the mesh cache,
the rate limiter and retrier, the writer registry, remote reads."""

from __future__ import annotations

import os
import threading
import time
import zipfile

import numpy as np
import pytest

from mesh_export import errors
from mesh_export.core.atomic import atomic_output, check_target
from mesh_export.retrieve.cache import MeshCache, cache_key
from mesh_export.retrieve.politeness import RateLimiter, Retrier, TransientError
from mesh_export.core.units import conversion_factor, normalize_units

# ------------------------------------------------------------------------------ atomic output


def test_atomic_output_renames_into_place_only_on_success(tmp_path):
    target = tmp_path / "out.bin"
    with atomic_output(target) as tmp:
        assert not tmp.exists() and tmp.parent == tmp_path
        tmp.write_bytes(b"new")
        assert not target.exists()
    assert target.read_bytes() == b"new"
    with pytest.raises(RuntimeError):
        with atomic_output(target, overwrite=True) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer failed")
    assert target.read_bytes() == b"new"  # the old file survives a failed write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]  # no temp file left


def test_atomic_output_never_replaces_without_overwrite(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(errors.OutputError, match="--overwrite"):
        with atomic_output(target):
            pass
    # A file that appears while the output is being written is not replaced either.
    other = tmp_path / "race.bin"
    with pytest.raises(errors.OutputError, match="appeared"):
        with atomic_output(other) as tmp:
            tmp.write_bytes(b"mine")
            other.write_bytes(b"theirs")
    assert other.read_bytes() == b"theirs"
    with atomic_output(target, overwrite=True) as tmp:
        tmp.write_bytes(b"replaced")
    assert target.read_bytes() == b"replaced"


def test_check_target_errors(tmp_path):
    with pytest.raises(errors.OutputError, match="does not exist"):
        check_target(tmp_path / "missing" / "x.stl")
    with pytest.raises(errors.OutputError, match="is a directory"):
        check_target(tmp_path, overwrite=True)
    read_only = tmp_path / "ro.stl"
    read_only.write_bytes(b"x")
    read_only.chmod(0o444)
    with pytest.raises(errors.OutputError, match="read-only"):
        check_target(read_only, overwrite=True)


# ------------------------------------------------------------------------------ units


@pytest.mark.parametrize("name, canonical", [("nm", "nm"), ("Microns", "um"), ("µm", "um"),
                                             ("millimetre", "mm"), (" m ", "m"), (None, None)])
def test_unit_names(name, canonical):
    assert normalize_units(name) == canonical


def test_unit_conversion_and_unknown_units():
    assert conversion_factor("nm", "um") == pytest.approx(1e-3)
    assert conversion_factor("mm", "nm") == pytest.approx(1e6)
    assert conversion_factor("um", "um") == 1.0
    with pytest.raises(errors.UnitsError, match="unknown units 'furlong'"):
        normalize_units("furlong")


# ------------------------------------------------------------------------------ cache


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


# ------------------------------------------------------------------------------ politeness


def test_rate_limiter_spaces_acquisitions_across_threads():
    limiter = RateLimiter(rate=50.0, burst=1.0)
    stamps = []
    lock = threading.Lock()

    def take(n):
        for _ in range(n):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=take, args=(10,)) for _ in range(3)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 30 tokens at 50/s with a burst of one: at least 29 intervals of 20 ms.
    assert time.monotonic() - started >= 29 / 50 * 0.95
    unlimited = RateLimiter(None)
    started = time.monotonic()
    for _ in range(1000):
        unlimited.acquire()
    assert time.monotonic() - started < 0.5


def test_retrier_retries_transient_failures_until_the_budget_ends():
    calls = []

    def flaky():
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise TransientError("short body")
        return "ok"

    retry = Retrier(timeout=10)
    assert retry(flaky) == "ok" and retry.retries == 2

    def broken():
        raise TransientError("always")

    retry = Retrier(timeout=1.0)
    started = time.monotonic()
    with pytest.raises(TransientError):
        retry(broken)
    assert time.monotonic() - started <= 1.0 + 0.1

    def wrong():
        raise ValueError("not transient")

    retry = Retrier(timeout=10)
    with pytest.raises(ValueError):
        retry(wrong)
    assert retry.retries == 0


# ------------------------------------------------------------------------------ remote reads


def test_remote_reads_local_files_and_ranges(tmp_path):
    import gzip

    from mesh_export.retrieve.remote import Missing, Remote, http_base

    (tmp_path / "a").write_bytes(b"0123456789")
    (tmp_path / "b.gz").write_bytes(gzip.compress(b"abcdef"))
    remote = Remote(tmp_path.as_uri(), Retrier(5))
    assert remote.get("a") == b"0123456789" and remote.get("a", 2, 3) == b"234"
    assert remote.get("b") == b"abcdef" and remote.get("b", 1, 2) == b"bc"
    with pytest.raises(Missing):
        remote.get("nothing")
    assert remote.map(["a", "b"], lambda r, name: r.get(name)) == [b"0123456789", b"abcdef"]
    assert http_base("gs://bucket/layer") == "https://storage.googleapis.com/bucket/layer"
    assert http_base("precomputed://s3://bucket/x") == "https://s3.amazonaws.com/bucket/x"
    assert http_base("middleauth+https://h/x") == "https://h/x"


# ------------------------------------------------------------------------------ registry


def test_registry_lookup_by_name_and_extension():
    from mesh_export.writers import registry
    from mesh_export.writers.catalog import get_writer, writer_for_path
    from mesh_export.writers.registry import Writer, register

    assert get_writer("stl").name == "stl" and writer_for_path("cell.PLY").name == "ply"
    assert writer_for_path("cell.stl", format="obj").name == "obj"
    with pytest.raises(errors.UnknownFormatError):
        get_writer("no-such-format")
    with pytest.raises(errors.UnknownFormatError):
        writer_for_path("cell.unknown-extension")
    custom = Writer("test-xyz-format", (".testxyz",), lambda mesh, path: None)
    register(custom)
    try:
        assert get_writer("test-xyz-format") is custom and writer_for_path("a.testxyz") is custom
        with pytest.raises(ValueError, match="already registered"):
            register(custom)
    finally:
        registry._WRITERS.pop("test-xyz-format")
        registry._forget_index()
    with pytest.raises(errors.UnknownFormatError):
        get_writer("test-xyz-format")
