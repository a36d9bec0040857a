"""Atomic output (core/atomic.py): write to a temporary name, rename into place only on success."""

from __future__ import annotations

import pytest

from mesh_export import errors
from mesh_export.core.atomic import atomic_output, check_target


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
