"""Atomic output (core/atomic.py): write to a temporary name, rename into place only on success.

The contract: a reader never sees a half-written file under the real name; a failed write
(any exception, Ctrl-C too) leaves the old file as it was and no temporary file behind; a
file is never replaced without ``overwrite``, not even one that appears mid-write; and
concurrent writers to one target each produce a whole file (one wins), never a mix."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from mesh_export import errors
from mesh_export.core.atomic import atomic_output, check_target, make_output_dir, replaced_file


def names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------ atomic_output


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


def test_the_temporary_name_is_hidden_fresh_and_keeps_the_suffix(tmp_path):
    target = tmp_path / "cell.stl"
    seen = []
    for _ in range(2):
        with atomic_output(target, overwrite=True, suffix=".stl") as tmp:
            seen.append(tmp)
            # Beside the target (same file system, so the rename is atomic), hidden, marked .part,
            # and ending in the suffix for libraries that pick a format by extension.
            assert tmp.parent == tmp_path and tmp.name.startswith(".cell.stl.")
            assert tmp.name.endswith(".part.stl") and not tmp.exists()
            tmp.write_bytes(b"x")
    assert seen[0] != seen[1]  # a new random name each time: nothing stale is reused
    assert names(tmp_path) == ["cell.stl"]


def test_no_partial_file_is_visible_under_the_real_name_while_writing(tmp_path):
    new, old = tmp_path / "new.bin", tmp_path / "old.bin"
    old.write_bytes(b"old content")
    with atomic_output(new) as tmp_new, atomic_output(old, overwrite=True) as tmp_old:
        for tmp in (tmp_new, tmp_old):
            with open(tmp, "xb") as handle:  # how native writers create it
                handle.write(b"partial")
                handle.flush()
                assert not new.exists() and old.read_bytes() == b"old content"
                handle.write(b" and the rest")
    assert new.read_bytes() == old.read_bytes() == b"partial and the rest"


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("failure", [RuntimeError, KeyboardInterrupt, SystemExit])
def test_a_failed_write_leaves_no_file_and_no_temporary(tmp_path, overwrite, failure):
    target = tmp_path / "out.bin"
    if overwrite:
        target.write_bytes(b"previous")
    with pytest.raises(failure):
        with atomic_output(target, overwrite=overwrite) as tmp:
            tmp.write_bytes(b"half a mesh")
            raise failure()
    # Ctrl-C (KeyboardInterrupt) and sys.exit are BaseExceptions: cleaned up all the same.
    assert names(tmp_path) == (["out.bin"] if overwrite else [])
    if overwrite:
        assert target.read_bytes() == b"previous"


def test_a_writer_that_fails_before_creating_the_temporary_file(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(ValueError):
        with atomic_output(target):
            raise ValueError("bad input, nothing written")
    assert names(tmp_path) == []


def test_the_checks_run_before_any_work_unless_the_caller_just_ran_them(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    entered = []
    with pytest.raises(errors.OutputError, match="exists; pass --overwrite"):
        with atomic_output(target):
            entered.append(True)  # pragma: no cover - never reached
    assert entered == []  # the error comes before the writer runs
    # checked=True trusts the caller's check_target; the rename with overwrite still replaces.
    with atomic_output(check_target(target, overwrite=True), overwrite=True, checked=True) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"


def test_a_new_file_gets_the_permissions_of_any_new_file(tmp_path):
    target = tmp_path / "out.bin"
    umask = os.umask(0o022)
    try:
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def _race(count, work):
    """Run ``work(k)`` in ``count`` threads at once; the exception (or None) of each."""
    barrier = threading.Barrier(count)
    outcomes: list = [None] * count

    def run(k):
        try:
            work(k, barrier)
        except Exception as exc:  # noqa: BLE001 - reported to the test
            outcomes[k] = exc

    threads = [threading.Thread(target=run, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


PAYLOAD = 200_000  # bytes per writer: big enough that interleaved writes would show


def write_in_two_halves(handle, k, barrier):
    """Write writer ``k``'s payload in two halves, waiting for every other writer between them."""
    handle.write(bytes([k]) * (PAYLOAD // 2))
    barrier.wait(timeout=10)
    handle.write(bytes([k]) * (PAYLOAD // 2))


def assert_one_whole_file(folder, target):
    data = target.read_bytes()
    assert len(data) == PAYLOAD and len(set(data)) == 1  # one writer's bytes, whole
    assert names(folder) == [target.name]


def test_concurrent_writers_without_overwrite_one_wins_the_others_are_refused(tmp_path):
    target = tmp_path / "cell.stl"

    def work(k, barrier):
        with atomic_output(target) as tmp:
            tmp.write_bytes(bytes([k]) * PAYLOAD)
            barrier.wait(timeout=10)  # every writer has passed check_target: now all rename

    outcomes = _race(6, work)
    winners = [k for k, exc in enumerate(outcomes) if exc is None]
    assert len(winners) == 1, outcomes
    assert all(isinstance(exc, errors.OutputError) and "appeared" in str(exc)
               for exc in outcomes if exc is not None)
    assert target.read_bytes() == bytes([winners[0]]) * PAYLOAD
    assert names(tmp_path) == ["cell.stl"]


def test_concurrent_writers_with_overwrite_leave_one_whole_file(tmp_path):
    target = tmp_path / "cell.stl"

    def work(k, barrier):
        with atomic_output(target, overwrite=True) as tmp:
            with open(tmp, "xb") as handle:
                write_in_two_halves(handle, k, barrier)

    assert _race(6, work) == [None] * 6
    assert_one_whole_file(tmp_path, target)


# ------------------------------------------------------------------------------ replaced_file


def test_replaced_file_replaces_on_success_only(tmp_path):
    target = tmp_path / "manifest.jsonl"
    with replaced_file(target, "w") as handle:
        handle.write("first\n")
        assert not target.exists()
    with replaced_file(target, "w", fsync=True) as handle:  # no --overwrite: the tool owns it
        handle.write("second\n")
    assert target.read_text() == "second\n"
    with pytest.raises(RuntimeError):
        with replaced_file(target, "wb") as handle:
            handle.write(b"half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "second\n"
    assert names(tmp_path) == ["manifest.jsonl"]


def test_concurrent_replaced_files_the_last_complete_one_wins(tmp_path):
    target = tmp_path / "entry.npz"

    def work(k, barrier):
        with replaced_file(target, "wb") as handle:
            write_in_two_halves(handle, k, barrier)

    assert _race(5, work) == [None] * 5
    assert_one_whole_file(tmp_path, target)


# ------------------------------------------------------------------------------ checks


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


def test_check_target_more_errors_and_success(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_bytes(b"x")
    with pytest.raises(errors.OutputError, match="does not exist"):
        check_target(a_file / "x.stl")  # the "directory" is a file
    with pytest.raises(errors.OutputError, match="exists; pass --overwrite"):
        check_target(a_file)
    assert check_target(str(a_file), overwrite=True) == a_file  # str in, Path out
    assert check_target(tmp_path / "new.stl") == tmp_path / "new.stl"
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)  # no write bit: refused even for root, as cp and rm treat it
    try:
        with pytest.raises(errors.OutputError, match="not writable"):
            check_target(locked / "x.stl")
    finally:
        locked.chmod(0o755)
    assert errors.OutputError.exit_code == 5


def test_make_output_dir(tmp_path):
    nested = tmp_path / "a" / "b" / "c"
    assert make_output_dir(nested) == nested and nested.is_dir()
    assert make_output_dir(str(nested)) == nested  # an existing folder is fine
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"x")
    with pytest.raises(errors.OutputError, match="not a directory"):
        make_output_dir(blocker)
    with pytest.raises(errors.OutputError, match="cannot create output directory"):
        make_output_dir(blocker / "below")
