"""Vectorised number-to-text formatting for the ASCII writers.

Python's float formatting runs at 13-60 MB/s; these writers are bound by it. Here every
row of a table is laid out in a fixed-width byte matrix (one column per character), the
digits are filled column by column with integer arithmetic over whole arrays, padding is
marked with NUL and squeezed out with one boolean mask. The text matches ``%.{d}f`` /
``%d`` except in exact-half ties (rounded half-to-even from value * 10**d, so at most one
unit in the last decimal) and in never printing "-0.000".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence, Union

import numpy as np

_ZERO = ord("0")
_MINUS = ord("-")
_DOT = ord(".")
# Keep value * 10**decimals inside int64 with headroom for rounding.
_INT64_SAFE = 2.0**62


@dataclass(frozen=True)
class Fixed:
    """A float column printed with a fixed number of decimals."""

    values: np.ndarray
    decimals: int


@dataclass(frozen=True)
class Int:
    """An integer column."""

    values: np.ndarray


Segment = Union[bytes, Fixed, Int]


def choose_decimals(values: np.ndarray, significant: int = 9) -> int:
    """Decimals that keep ``significant`` digits of the largest magnitude in ``values``.

    Nine digits is beyond float32 precision (about 7.2), so float32 data round-trips; the
    absolute resolution is then uniform over the mesh, which is what coordinates need.
    """
    if values.size == 0:
        return 0
    largest = float(np.max(np.abs(values)))
    if not np.isfinite(largest) or largest == 0.0:
        return 1
    integer_digits = int(np.floor(np.log10(largest))) + 1
    decimals = max(0, min(15, significant - integer_digits))
    while decimals > 0 and largest * 10.0**decimals >= _INT64_SAFE:
        decimals -= 1
    return decimals


def morphology_decimals(values: np.ndarray, smallest: float) -> int:
    """Decimals for a morphology's positions and radii (SWC, hoc): enough for 0.1 nm in um
    files, and to keep the smallest radius non-zero."""
    decimals = 4
    if smallest > 0:
        decimals = max(decimals, int(math.ceil(-math.log10(smallest))) + 2)
    return min(decimals, choose_decimals(values, significant=15) or decimals, 12)


def _digit_count(largest: int) -> int:
    return max(1, len(str(int(largest))))


# Two digits per integer division (half the divisions of a digit-by-digit loop), looked up
# in two 1-D tables: a 1-D take is several times faster than indexing a (100, 2) table.
_TENS_DIGIT = np.array([_ZERO + i // 10 for i in range(100)], dtype=np.uint8)
_UNITS_DIGIT = np.array([_ZERO + i % 10 for i in range(100)], dtype=np.uint8)


def _write_digits(buf: np.ndarray, col: int, magnitude: np.ndarray, width: int) -> None:
    """Fill ``width`` columns from ``col`` with the zero-padded digits of ``magnitude``."""
    narrow = np.uint32 if width <= 9 else np.uint64
    remaining = magnitude.astype(narrow)
    end = col + width
    hundred = narrow(100)
    while end - col >= 2:
        remaining, pair = np.divmod(remaining, hundred)
        buf[:, end - 2] = _TENS_DIGIT[pair]
        buf[:, end - 1] = _UNITS_DIGIT[pair]
        end -= 2
    if end > col:
        buf[:, col] = _UNITS_DIGIT[remaining]


def _blank_leading_zeros(buf: np.ndarray, col: int, magnitude: np.ndarray, width: int) -> None:
    """A digit position left of a shorter number is padding (NUL); the units digit always prints."""
    for k in range(width - 1):
        buf[magnitude < 10 ** (width - 1 - k), col + k] = 0


def _layout(segments: Sequence[Segment], start: int, stop: int):
    """Return the per-segment prepared data for rows [start, stop) and the total row width."""
    prepared = []
    width = 0
    for seg in segments:
        if isinstance(seg, bytes):
            prepared.append(("lit", seg, width))
            width += len(seg)
        elif isinstance(seg, Fixed):
            raw = np.asarray(seg.values[start:stop], dtype=np.float64)
            scale = 10**seg.decimals
            scaled = np.rint(np.abs(raw) * scale).astype(np.int64)
            negative = (raw < 0) & (scaled != 0)
            int_part, frac_part = np.divmod(scaled, scale)
            int_width = _digit_count(int_part.max(initial=0))
            has_sign = bool(negative.any())
            prepared.append(("fixed", (negative if has_sign else None, int_part, frac_part, int_width, seg.decimals), width))
            width += has_sign + int_width + (1 + seg.decimals if seg.decimals else 0)
        elif isinstance(seg, Int):
            raw = np.asarray(seg.values[start:stop]).astype(np.int64, copy=False)
            negative = raw < 0
            magnitude = np.abs(raw)
            digits = _digit_count(magnitude.max(initial=0))
            has_sign = bool(negative.any())
            prepared.append(("int", (negative if has_sign else None, magnitude, digits), width))
            width += has_sign + digits
        else:  # pragma: no cover - programming error
            raise TypeError(f"unknown segment {seg!r}")
    return prepared, width


def _render(prepared, width: int, rows: int) -> bytes:
    # Column-major: every column write below is contiguous; one transpose at the end.
    buf = np.zeros((width, rows), dtype=np.uint8).T
    for kind, data, col in prepared:
        if kind == "lit":
            buf[:, col : col + len(data)] = np.frombuffer(data, dtype=np.uint8)
            continue
        if kind == "fixed":
            negative, int_part, frac_part, int_width, decimals = data
        else:
            negative, int_part, int_width = data
            frac_part, decimals = None, 0
        if negative is not None:
            buf[:, col] = np.where(negative, _MINUS, 0)
            col += 1
        _write_digits(buf, col, int_part, int_width)
        _blank_leading_zeros(buf, col, int_part, int_width)
        col += int_width
        if decimals:
            buf[:, col] = _DOT
            _write_digits(buf, col + 1, frac_part, decimals)
    flat = buf.reshape(-1)
    return flat[flat != 0].tobytes()


# Bytes of text per chunk: the byte matrix and the per-column scratch arrays then stay in
# the CPU cache (1.5x faster for wide rows such as ASCII STL facets than 128k-row chunks).
_CHUNK_BYTES = 1 << 20


def _chunk_rows(segments: Sequence[Segment]) -> int:
    estimated_width = sum(len(seg) if isinstance(seg, bytes) else 12 for seg in segments)
    return max(1024, _CHUNK_BYTES // max(1, estimated_width))


def iter_text(segments: Sequence[Segment], rows: int, chunk_rows: int | None = None) -> Iterator[bytes]:
    """Yield the text of ``rows`` rows laid out by ``segments``, a chunk of rows at a time."""
    chunk_rows = chunk_rows or _chunk_rows(segments)
    for start in range(0, rows, chunk_rows):
        stop = min(rows, start + chunk_rows)
        if not _fits_int64(segments, start, stop):
            yield _python_text(segments, start, stop)
            continue
        prepared, width = _layout(segments, start, stop)
        yield _render(prepared, width, stop - start)


def _fits_int64(segments: Sequence[Segment], start: int, stop: int) -> bool:
    """Whether every fixed column of rows [start, stop) scaled by its decimals fits the integer
    arithmetic (a coordinate of 1e20, or one that is not finite, does not)."""
    for seg in segments:
        if isinstance(seg, Fixed) and stop > start:
            largest = float(np.abs(np.asarray(seg.values[start:stop], dtype=np.float64)).max())
            if not largest * 10.0**seg.decimals < _INT64_SAFE:
                return False
    return True


def _python_text(segments: Sequence[Segment], start: int, stop: int) -> bytes:
    """Rows [start, stop) by Python's own formatting: exact for any value, slow, and so only for
    the rare chunk the integer arithmetic cannot hold."""
    columns = [seg if isinstance(seg, bytes) else np.asarray(seg.values[start:stop]) for seg in segments]
    pieces = []
    for row in range(stop - start):
        for seg, column in zip(segments, columns):
            if isinstance(seg, bytes):
                pieces.append(seg)
            elif isinstance(seg, Fixed):
                pieces.append(_fixed_text(float(column[row]), seg.decimals))
            else:
                pieces.append(b"%d" % int(column[row]))
    return b"".join(pieces)


def _fixed_text(value: float, decimals: int) -> bytes:
    """One value as the integer layout writes it (half-to-even on value * 10**decimals, never
    "-0.000"), with Python's unbounded integers."""
    if not math.isfinite(value):
        return repr(value).encode()
    if abs(value) * 10**decimals >= 2.0**53:  # past float's integers: %f prints the exact digits
        return b"%.*f" % (decimals, value)
    scaled = int(np.rint(abs(value) * 10**decimals))
    sign = b"-" if value < 0 and scaled else b""
    if not decimals:
        return sign + b"%d" % scaled
    whole, fraction = divmod(scaled, 10**decimals)
    return sign + b"%d.%0*d" % (whole, decimals, fraction)


def write_text(handle, segments: Sequence[Segment], rows: int) -> None:
    for chunk in iter_text(segments, rows):
        handle.write(chunk)


def fixed_columns(array: np.ndarray, decimals: int, sep: bytes = b" ") -> list[Segment]:
    """Segments for every column of a 2-D float array, separated by ``sep``."""
    segments: list[Segment] = []
    for j in range(array.shape[1]):
        if j:
            segments.append(sep)
        segments.append(Fixed(array[:, j], decimals))
    return segments


def int_columns(array: np.ndarray, sep: bytes = b" ") -> list[Segment]:
    segments: list[Segment] = []
    for j in range(array.shape[1]):
        if j:
            segments.append(sep)
        segments.append(Int(array[:, j]))
    return segments
