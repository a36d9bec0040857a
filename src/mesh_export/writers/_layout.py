"""Binary files as a layout of parts: literal bytes and runs of fixed-size records (``Rows``)
computed a chunk at a time, written in order on one thread or at their offsets by two.

A writer describes its file (``[header, Rows(vertices), Rows(faces), ...]``) and
``write_layout`` decides how to write it. The record functions convert and check a chunk of
the mesh while it is in the CPU cache; nothing the size of the whole mesh is allocated.
"""

from __future__ import annotations

import contextvars
import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Union

import numpy as np

# Outputs at least this large are written by two threads (see write_layout).
PARALLEL_MIN_BYTES = 4 << 20
# Bytes per chunk of records: a chunk's scratch arrays stay in the CPU cache, and there are
# few enough chunks that the per-chunk Python overhead does not show.
CHUNK_BYTES = 1 << 20
# Scratch buffers up to this size are kept by their thread for its next write (a batch
# writes thousands of small files: reallocating and faulting in fresh pages each time shows).
_KEEP_SCRATCH_BYTES = 4 << 20

Scratch = dict  # one thread's scratch buffers, by name and dtype (see scratch_array)


@dataclass(frozen=True)
class Rows:
    """A run of ``count`` fixed-size records. ``fill(start, stop, scratch)`` returns records
    ``start:stop`` as a bytes-like object, usually a view of a ``scratch_array`` buffer that
    the same thread reuses for its next chunk once this one is written (and hashed)."""

    count: int
    row_bytes: int
    fill: Callable[[int, int, Scratch], Any]
    # Records per chunk, if not CHUNK_BYTES' worth: fills that run many numpy steps per chunk
    # need longer chunks to amortize each step's fixed cost.
    chunk_rows: int = 0

    @property
    def nbytes(self) -> int:
        return self.count * self.row_bytes


Part = Union[bytes, Rows]


def scratch_array(scratch: Scratch, name: str, dtype, rows: int,
                  init: Callable[[np.ndarray], None] | None = None) -> np.ndarray:
    """A buffer of at least ``rows`` records of ``dtype``, zeroed and passed to ``init`` (which
    sets the fields that are the same in every record, such as PLY's face count) when it is
    created. Names are module constants: a buffer outlives the write that created it, so a
    name must always mean the same layout and ``init``."""
    key = (name, np.dtype(dtype))
    buffer = scratch.get(key)
    if buffer is None or len(buffer) < rows:
        buffer = scratch[key] = np.zeros(rows, dtype=dtype)
        if init is not None:
            init(buffer)
    return buffer


_THREAD = threading.local()


def _thread_scratch() -> Scratch:
    scratch = getattr(_THREAD, "scratch", None)
    if scratch is None:
        scratch = _THREAD.scratch = {}
    return scratch


def _trim(scratch: Scratch) -> None:
    for key in [key for key, buffer in scratch.items() if buffer.nbytes > _KEEP_SCRATCH_BYTES]:
        del scratch[key]


def converted_rows(array: np.ndarray, dtype, check: Callable[[np.ndarray, np.ndarray], None] | None = None) -> Rows:
    """``array.astype(dtype)`` as Rows, converted a chunk at a time (no full-size copy); an
    array already in ``dtype`` is written from memory as it is. ``check(source, converted)``
    runs on each chunk while it is in cache (see validate.SurfaceValues)."""
    dtype = np.dtype(dtype)
    row_dtype = np.dtype((dtype, array.shape[1:])) if array.ndim > 1 else dtype
    as_is = array.dtype == dtype and array.flags.c_contiguous

    def fill(start: int, stop: int, scratch: Scratch):
        chunk = array[start:stop]
        if as_is:
            out = chunk
        else:
            out = scratch_array(scratch, "converted", row_dtype, stop - start)[: stop - start]
            with np.errstate(over="ignore"):  # overflow to inf is what check() looks for
                np.copyto(out, chunk, casting="unsafe")
        if check is not None:
            check(chunk, out)
        return memoryview(out).cast("B")

    return Rows(len(array), row_dtype.itemsize, fill)


class OutputDigest:
    """The SHA-256 of a file, computed by ``write_layout`` from the bytes it writes (in file
    order, on the writing threads) instead of reading the file back afterwards. Valid only
    if every byte of the file went through ``write_layout``: ``hexdigest(size)`` checks."""

    def __init__(self) -> None:
        self._sha256 = hashlib.sha256()
        self.nbytes = 0
        self.broken = False

    def update(self, data) -> None:
        self._sha256.update(data)  # releases the GIL for all but tiny pieces

    def hexdigest(self, file_size: int) -> str | None:
        """The digest if it covers a file of ``file_size`` bytes, else None."""
        return None if self.broken or self.nbytes != file_size else self._sha256.hexdigest()


_DIGEST: contextvars.ContextVar[OutputDigest | None] = contextvars.ContextVar("mesh_export_digest", default=None)


@contextmanager
def hashing_output(enabled: bool = True) -> Iterator[OutputDigest | None]:
    """Have ``write_layout`` calls on this thread hash what they write (for a provenance
    sidecar); yields the digest, or None when not ``enabled``."""
    if not enabled:
        yield None
        return
    digest = OutputDigest()
    token = _DIGEST.set(digest)
    try:
        yield digest
    finally:
        _DIGEST.reset(token)


def _rows_per_chunk(row_bytes: int) -> int:
    return max(1, CHUNK_BYTES // row_bytes)


def _pieces(parts: Iterable[Part]) -> Iterator[tuple[int, Part, int, int]]:
    """(offset, part, start row, stop row) of every piece to write, in file order."""
    offset = 0
    for part in parts:
        if isinstance(part, Rows):
            step = part.chunk_rows or _rows_per_chunk(part.row_bytes)
            for start in range(0, part.count, step):
                stop = min(part.count, start + step)
                yield offset + start * part.row_bytes, part, start, stop
            offset += part.nbytes
        else:
            yield offset, part, 0, 0
            offset += len(part)


def _materialize(part: Part, start: int, stop: int, scratch: Scratch):
    return part.fill(start, stop, scratch) if isinstance(part, Rows) else part


def write_layout(handle, parts: list[Part]) -> None:
    """Write ``parts`` (literal bytes and Rows, in file order) to the binary ``handle``.

    Outputs of PARALLEL_MIN_BYTES and more are written by two threads that take chunks in
    turn and ``pwrite`` each at its own offset: numpy's conversions and the kernel's copy
    into the page cache both release the GIL, so on two cores each thread converts while
    the other writes (a 25 MB PLY: 10.9 -> 7.6 ms). Smaller ones are written in order on
    this thread, where a helper thread would cost more than it saves. Under
    ``hashing_output`` every piece is also hashed, in file order: by the thread that wrote
    it (two threads), or on a pool thread while this one writes it (one thread).
    """
    total = sum(part.nbytes if isinstance(part, Rows) else len(part) for part in parts)
    digest = _DIGEST.get()
    handle.flush()
    base = handle.tell()
    if digest is not None:
        if base != digest.nbytes:  # bytes written outside write_layout: not all hashed
            digest.broken = True
        digest.nbytes = base + total
    scratch = _thread_scratch()
    try:
        if total >= PARALLEL_MIN_BYTES:
            pieces = list(_pieces(parts))

            def make(number: int, scratch: Scratch):
                _, part, start, stop = pieces[number]
                return _materialize(part, start, stop, scratch)

            written = write_in_order(handle.fileno(), base, len(pieces), make, digest)
            if written != total:  # a fill that returned other than its rows
                raise ValueError(f"wrote {written} bytes of a {total}-byte layout")
            handle.seek(base + total)
            return
        for _, part, start, stop in _pieces(parts):
            data = _materialize(part, start, stop, scratch)
            if digest is not None and len(data) >= _OVERLAP_MIN_BYTES:
                # Hash on a pool thread while this one writes: both release the GIL, and
                # hashing (~2 GB/s) costs about what the write does.
                hashing = _hash_pool().submit(digest.update, data)
                try:
                    handle.write(data)
                finally:
                    hashing.result()
            else:
                handle.write(data)
                if digest is not None:
                    digest.update(data)
    finally:
        _trim(scratch)


_OVERLAP_MIN_BYTES = 64 << 10
_POOL_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None


def _hash_pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mesh-export-hash")
        return _POOL


def _forget_pool_after_fork() -> None:
    # A forked child has none of the pool's threads; a fresh pool is made on first use.
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def write_in_order(fd: int, base: int, count: int, make: Callable[[int, Scratch], Any],
                   digest: OutputDigest | None = None) -> int:
    """Write ``make(0, scratch)``, ..., ``make(count - 1, scratch)`` (bytes-like) one after
    another from offset ``base`` of ``fd``; return the bytes written. ``digest``: hashed in
    file order as they are written.

    Two threads make parts in turn and ``pwrite`` each at its own offset: numpy and the
    kernel's copy release the GIL, so one makes while the other writes. A part's size may be
    known only once it is made (an STL's facets without those that collapse): each part takes
    its offset, in order, once it is made and the part before it has taken its."""
    lock = threading.Lock()
    write_lock = threading.Lock()
    turn = threading.Condition()
    stop = threading.Event()
    errors: list[BaseException] = []
    numbers = iter(range(count))
    placed = [0, 0]  # parts given an offset so far, bytes they take
    hashed = [0]  # parts hashed so far

    def my_turn(done: list, number: int) -> bool:
        """Wait (holding ``turn``) until ``number`` parts are done; False if the write stopped."""
        while done[0] != number:
            if stop.is_set():
                return False
            turn.wait(0.05)
        return True

    def work(scratch: Scratch) -> None:
        try:
            while not stop.is_set():
                with lock:
                    number = next(numbers, None)
                if number is None:
                    return
                data = memoryview(make(number, scratch)).cast("B")
                with turn:
                    if not my_turn(placed, number):
                        return
                    offset = placed[1]
                    placed[0] += 1
                    placed[1] += len(data)
                    turn.notify_all()
                # One pwrite at a time: concurrent writes to one file contend in the kernel
                # (two halves of 29 MB written at once took 4.9 ms, one after the other 2.6).
                with write_lock:
                    pwrite_all(fd, data, base + offset)
                if digest is not None:
                    with turn:
                        if not my_turn(hashed, number):
                            return
                    digest.update(data)  # outside the lock: the other thread makes and writes meanwhile
                    with turn:
                        hashed[0] += 1
                        turn.notify_all()
        except BaseException as error:  # re-raised on the calling thread
            errors.append(error)
            stop.set()

    helper = threading.Thread(target=work, args=({},), name="mesh-export-write", daemon=True)
    helper.start()
    scratch = _thread_scratch()
    try:
        work(scratch)
    finally:
        stop.set()  # after an interrupt, the helper stops at its next part
        helper.join()
        _trim(scratch)
    if errors:
        raise errors[0]
    return placed[1]


def pwrite_all(fd: int, data, offset: int) -> None:
    view = memoryview(data).cast("B")
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written
