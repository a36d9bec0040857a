"""What the native readers share: their errors, block reads, numbers parsed from text, lines
handed out in blocks, polygons fanned into triangles.

PLY, STL, OBJ and OFF, the formats mesh-export writes natively, are read with numpy (each
reader sits beside its writer): binary records through structured dtypes, read a block at a
time straight into the result arrays; text through numpy's integer parser (``text_numbers``).
Vertices keep the file's float type (float32 stays float32; text is float64, as float() reads
it) and faces are int32 unless the file's indices are 64-bit. A variant these readers leave
alone raises NotNative and goes to trimesh; a damaged file raises Damaged, which
``readers.read_surface`` reports as an InputError.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

BLOCK_BYTES = 1 << 24  # binary records are converted, and text parsed, this much at a time


class NotNative(Exception):
    """A variant of a native format left to trimesh (which may read it, or say why not)."""


class BadText(NotNative):
    """Text that is not the whitespace-separated numbers expected."""


class Damaged(ValueError):
    """A file of a native format that is truncated or contradicts its own header."""


def read_into(handle, array: np.ndarray) -> int:
    """Fill ``array`` from ``handle``; returns the bytes read (fewer at the end of the file)."""
    view = memoryview(array.reshape(-1).view(np.uint8))
    done = 0
    while done < len(view):
        count = handle.readinto(view[done:])
        if not count:
            break
        done += count
    return done



def fan(indices: np.ndarray, counts: np.ndarray, starts: np.ndarray | None = None,
         dtype=np.int32) -> np.ndarray:
    """Triangles ``(first, j, j + 1)`` of polygons whose ``counts`` corners stand one after
    another in ``indices`` (from ``starts``)."""
    counts = np.asarray(counts, dtype=np.int64)
    if len(counts) and counts.min() < 3:  # also the sign of a header whose counts are wrong
        raise Damaged("a face with fewer than 3 vertices")
    if starts is None:
        starts = np.cumsum(counts) - counts
    fans = counts - 2
    polygon = np.repeat(np.arange(len(counts)), fans)
    corner = np.arange(len(polygon)) - np.repeat(np.cumsum(fans) - fans, fans) + 1
    first = np.asarray(starts, dtype=np.int64)[polygon]
    triangles = np.empty((len(polygon), 3), dtype=dtype)
    triangles[:, 0] = indices[first]
    triangles[:, 1] = indices[first + corner]
    triangles[:, 2] = indices[first + corner + 1]
    return triangles



# -- numbers in text

_NUMBER_CHARS = b"0123456789+-."
_SPACE = b" \t\r\n\v\f"
_POW10 = 10.0 ** np.arange(23)


def text_numbers(text: bytes) -> np.ndarray:
    """The whitespace-separated numbers in ``text``: int64 when all are integers, else
    float64, each the double ``float()`` reads. Raises BadText on anything else.

    numpy's float parsers (np.fromstring, np.loadtxt) read ~50 MB/s here, its integer parser
    ~300 MB/s. Decimals with a fixed number of digits after the point, as mesh writers write
    them ("%.6f"), are read as integers with the point removed and divided by 10**digits: one
    correctly rounded division of two exact doubles, hence the same double as ``float()``.
    Anything else (exponents, nan, mixed digit counts) goes to numpy's float parser.
    """
    text = text.strip()  # numpy reads whitespace alone as a number
    if not text:
        return np.zeros(0, dtype=np.int64)
    if text.translate(None, _NUMBER_CHARS + _SPACE):
        return _parse(text, np.float64)  # words, exponents, nan: numpy's float parser decides
    chars = np.frombuffer(text + b" ", dtype=np.uint8)
    if (b"-" in text or b"+" in text) and _lone_signs(chars):
        raise BadText("a sign without digits")  # numpy's integer parser would join it to the next number
    if b"." not in text:
        return _parse(text, np.int64)
    points = np.flatnonzero(chars == ord("."))
    digits = 0
    while 48 <= int(chars[points[0] + 1 + digits]) <= 57:
        digits += 1
    # Every point must be followed by exactly ``digits`` digits, then a space; "clip" reads
    # the final space for positions past the end, which fails the digit test.
    fixed = digits < len(_POW10) and bool((chars.take(points + digits + 1, mode="clip") <= 32).all())
    for offset in range(1, digits + 1):
        if not fixed:
            break
        fixed = bool(((chars.take(points + offset, mode="clip") - np.uint8(48)) <= 9).all())
    if not fixed:
        return _parse(text, np.float64)
    mantissas = _parse(text.replace(b".", b""), np.int64)
    if len(mantissas) != len(points) or int(np.abs(mantissas).max()) >= 2**53:
        return _parse(text, np.float64)  # numbers without a point, or too many digits
    values = mantissas / _POW10[digits]
    zeros = np.flatnonzero(mantissas == 0)
    if len(zeros):  # "-0.000" is -0.0: find the sign before each zero's digits
        at = points[zeros] - 1
        while True:
            digit = (at >= 0) & (chars[np.maximum(at, 0)] - np.uint8(48) <= 9)
            if not digit.any():
                break
            at[digit] -= 1
        values[zeros[(at >= 0) & (chars[np.maximum(at, 0)] == ord("-"))]] = -0.0
    return values


def _lone_signs(chars: np.ndarray) -> bool:
    """Whether a sign in ``chars`` (text and a final space) is not followed by a digit or by a
    point and a digit."""
    signs = np.flatnonzero((chars == ord("-")) | (chars == ord("+")))
    after = chars.take(signs + 1, mode="clip")
    point = after == ord(".")
    after[point] = chars.take(signs[point] + 2, mode="clip")
    return not bool((after - np.uint8(48) <= 9).all())


def _parse(text: bytes, dtype) -> np.ndarray:
    try:
        return np.fromstring(text, dtype=dtype, sep=" ")
    except ValueError as exc:
        raise BadText(str(exc)) from None


class Lines:
    """A text file from an offset on, handed out as pieces of whole lines."""

    def __init__(self, handle):
        self._handle = handle
        self._block, self._ends, self._line = b"", np.zeros(0, dtype=np.int64), 0
        self._carry = b""

    def _next_block(self) -> bool:
        data = self._handle.read(BLOCK_BYTES)
        if not data:
            if not self._carry:
                return False
            data, self._carry = self._carry + b"\n", b""
        else:
            data = self._carry + data
            cut = data.rfind(b"\n") + 1
            data, self._carry = data[:cut], data[cut:]
        ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n")) + 1
        self._block, self._ends, self._line = data, ends, 0
        return True

    def take(self, count: int) -> Iterator[tuple[bytes, int]]:
        """Pieces ``(text, lines)`` holding the next ``count`` lines."""
        while count > 0:
            if self._line >= len(self._ends) and not self._next_block():
                raise Damaged(f"it ends {count:,} lines early (truncated, or the header's counts are wrong)")
            if self._line >= len(self._ends):
                continue
            lines = min(count, len(self._ends) - self._line)
            start = int(self._ends[self._line - 1]) if self._line else 0
            stop = int(self._ends[self._line + lines - 1])
            self._line += lines
            count -= lines
            yield self._block[start:stop], lines

    def skip_blank(self) -> None:
        """Move past empty lines (OFF files have them between their sections)."""
        while self._line < len(self._ends) or self._next_block():
            if self._line >= len(self._ends):
                continue
            start = int(self._ends[self._line - 1]) if self._line else 0
            if self._block[start : int(self._ends[self._line])].strip():
                return
            self._line += 1

    def rest(self) -> Iterator[tuple[bytes, np.ndarray]]:
        """The remaining blocks, each with the offsets just past its newlines."""
        if self._line < len(self._ends):
            start = int(self._ends[self._line - 1]) if self._line else 0
            yield self._block[start:], self._ends[self._line:] - start
        while self._next_block():
            yield self._block, self._ends



def text_polygons(pieces, layout: list, index_list: int, index_dtype, trailing: bool = False) -> np.ndarray:
    """Triangles of a text element whose lines hold ``layout`` (None for a number, "list" for a
    count and that many numbers); the list at position ``index_list`` holds vertex indices.
    ``trailing``: lines may end in more numbers (OFF's face colours), as many on every line."""
    out = []
    for text, lines in pieces:
        numbers = text_numbers(text)
        counts, at = [], 0
        first = numbers[: 4 * len(layout) + 64].tolist()
        try:  # the first line's list lengths, assumed for every line
            for kind in layout:
                counts.append(int(first[at]) if kind else 0)
                at += 1 + counts[-1] if kind else 1
        except IndexError:
            raise BadText("a line shorter than its lists say") from None
        width = at
        if trailing and lines and numbers.size % lines == 0:
            width = max(width, numbers.size // lines)
        rows = numbers.reshape(lines, width) if numbers.size == lines * width else None
        list_columns = np.cumsum([0] + [1 + c if k else 1 for k, c in zip(layout, counts)])[:-1]
        if rows is not None and all((rows[:, list_columns[i]] == counts[i]).all()
                                    for i, kind in enumerate(layout) if kind):
            start = list_columns[index_list] + 1
            polygons = rows[:, start : start + counts[index_list]]
            if counts[index_list] == 3:
                out.append(polygons.astype(index_dtype))
            else:
                out.append(fan(polygons.ravel(), np.full(lines, counts[index_list]), dtype=index_dtype))
        else:
            out.append(_walk_polygons(numbers, lines, layout, index_list, index_dtype))
    return np.concatenate(out) if out else np.zeros((0, 3), dtype=index_dtype)


def _walk_polygons(numbers: np.ndarray, lines: int, layout: list, index_list: int, index_dtype) -> np.ndarray:
    """Lists of varying length: walked one element at a time (slow; polygon meshes only)."""
    values = numbers.tolist()
    starts, counts, at = [], [], 0
    try:
        for _ in range(lines):
            for position, kind in enumerate(layout):
                if not kind:
                    at += 1
                    continue
                count = int(values[at])
                if position == index_list:
                    starts.append(at + 1)
                    counts.append(count)
                at += 1 + count
    except IndexError:
        raise BadText("lines shorter than their lists say") from None
    if at != len(values):
        raise BadText("more numbers than the element's lines hold")
    return fan(numbers, counts, np.asarray(starts, dtype=np.int64), dtype=index_dtype)
