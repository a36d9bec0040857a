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

import contextlib
import contextvars
import io
from typing import BinaryIO, Callable, Iterator

import numpy as np

from mesh_export.core.cells import fan as fan_triangles

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
    another in ``indices`` (from ``starts``). Lines and points (1 or 2 corners, which PLY and
    OBJ files mix with faces) are left out and counted in the read's notes; no corners at all is
    a count the file got wrong."""
    counts = np.asarray(counts, dtype=np.int64)
    whole_numbers(indices)
    if starts is None:
        starts = np.cumsum(counts) - counts
    if len(counts) and counts.min() < 3:
        if counts.min() < 1:
            raise Damaged("a face with no vertices (or a negative count): the file's counts are wrong")
        surface = counts >= 3
        current().drop("faces of 1 or 2 vertices (lines, points)",
                       len(counts) - int(surface.sum()))
        counts, starts = counts[surface], np.asarray(starts)[surface]
    return fan_triangles(indices, counts, starts, dtype=dtype)


def whole_numbers(indices: np.ndarray) -> None:
    """Refuse face indices read as floats that are not whole numbers ("3.5" would be cast to 3)."""
    if indices.dtype.kind == "f" and indices.size and not (np.isfinite(indices).all()
                                                           and (indices == np.round(indices)).all()):
        raise Damaged("a face index that is not a whole number")


# -- what a read skipped, kept and where its elements are

class ReadNotes:
    """What a native read noticed beside the geometry: elements left out (counted), things
    skipped (one sentence each), per-vertex arrays (``"color"``, ``"uv"``), and where vertex and
    face ``i`` stand in the file (for an error naming the line or byte)."""

    def __init__(self):
        self.dropped: dict[str, int] = {}
        self.skipped: list[str] = []
        self.vertex_attributes: dict[str, np.ndarray] = {}
        self.vertex_place: Callable[[int], str] | None = None
        self.face_place: Callable[[int], str] | None = None

    def drop(self, what: str, count: int) -> None:
        if count:
            self.dropped[what] = self.dropped.get(what, 0) + int(count)

    def skip(self, sentence: str) -> None:
        if sentence not in self.skipped:
            self.skipped.append(sentence)

    def sentences(self) -> list[str]:
        return [f"left out: {what}: {count:,}" for what, count in self.dropped.items()] + self.skipped


_NOTES: contextvars.ContextVar[ReadNotes | None] = contextvars.ContextVar("read_notes", default=None)


@contextlib.contextmanager
def noting() -> Iterator[ReadNotes]:
    """Collect the notes of the native reads inside the block (one per thread or task)."""
    notes = ReadNotes()
    token = _NOTES.set(notes)
    try:
        yield notes
    finally:
        _NOTES.reset(token)


def current() -> ReadNotes:
    """The notes being collected, or a throwaway set when no one listens (a reader called directly)."""
    return _NOTES.get() or ReadNotes()


# -- text encodings

_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def open_text_source(path) -> BinaryIO:
    """``path`` opened for a reader of byte text: as it is, or (a file that starts with a
    byte-order mark: UTF-8, or UTF-16 as Windows tools save text) decoded to UTF-8 bytes in
    memory, which the notes state."""
    handle = open(path, "rb")
    head = handle.read(3)
    for mark, codec in _BOMS:
        if head.startswith(mark):
            handle.seek(0)
            data = handle.read()
            handle.close()
            try:
                text = data.decode("utf-8-sig" if codec == "utf-8" else codec)
            except UnicodeDecodeError as exc:
                raise Damaged(f"byte {exc.start:,}: not {codec.upper()} text, though it starts with a "
                              f"{codec.upper()} byte-order mark") from None
            current().skip(f"its {codec.upper()} byte-order mark (the text decoded)")
            return io.BytesIO(text.encode("utf-8"))
    handle.seek(0)
    return handle


def size_of(handle) -> int:
    """The size of an open file or in-memory copy."""
    here = handle.tell()
    size = handle.seek(0, io.SEEK_END)
    handle.seek(here)
    return size


_CONTROL = bytes(range(9)) + bytes(range(14, 32))


def after_binary_body(handle, position: int, size: int, record: int, what: str) -> None:
    """Bytes after a binary body (from ``position``): fewer than one ``record`` (a newline,
    padding) or text are skipped, and said; more binary bytes may be records the header does not
    count, so they are refused."""
    extra = size - position
    handle.seek(position)
    sample = handle.read(min(extra, 1 << 12))
    if extra >= max(record, 1) and sample.translate(None, _CONTROL) != sample:
        raise Damaged(f"byte {position:,}: {extra:,} bytes of binary data after the last {what} the header "
                      "declares (its counts are wrong, or the file was joined to another)")
    current().skip(f"{extra:,} bytes after the complete body (from byte {position:,})")


def check_declared(what: str, needed: int, available: int) -> None:
    """Refuse a header whose counts need more bytes than the file holds, before anything is
    allocated for them (a 1 kB file declaring 2e9 vertices)."""
    if needed - 1 > available:  # a text file's last newline may be missing
        raise Damaged(f"its header declares {what}, at least {needed:,} bytes, but the file holds "
                      f"{available:,} after the header (truncated, or the counts are wrong)")


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
    """A text file from an offset on, handed out as pieces of whole lines, each line's number
    in the file known (``number``). ``comment``: a byte after which a line is a comment (OFF's
    ``#``): such text, and lines left blank by it, are taken out where they are, so comments
    may stand anywhere (the notes say they were)."""

    def __init__(self, handle, first_number: int = 1, comment: bytes | None = None):
        self._handle = handle
        self._block, self._ends, self._line = b"", np.zeros(0, dtype=np.int64), 0
        self._carry = b""
        self._comment = comment
        self._next_number = first_number  # the number of the first line of the next block
        self._numbers: np.ndarray | None = None  # each kept line's number, once comments are out
        self._first = first_number
        # The piece handed out last (where it stands in the block: a copy would be a block more
        # memory) and its first line's number, for an error to name the line.
        self.piece_number, self._piece = first_number, (0, 0)

    @property
    def piece_text(self) -> bytes:
        """The text of the piece handed out last."""
        return self._block[self._piece[0] : self._piece[1]]

    def number(self, line: int | None = None) -> int:
        """The number in the file of the block's line ``line`` (the next one to be taken)."""
        line = self._line if line is None else line
        if self._numbers is not None:
            return int(self._numbers[min(line, len(self._numbers) - 1)]) + (line >= len(self._numbers))
        return self._first + line

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
        self._first, self._numbers = self._next_number, None
        self._next_number += len(ends)
        if self._comment is not None and self._comment in data:
            data, ends = self._without_comments(data, ends)
        self._block, self._ends, self._line = data, ends, 0
        return True

    def _without_comments(self, data: bytes, ends: np.ndarray) -> tuple[bytes, np.ndarray]:
        kept, numbers, start = [], [], 0
        for number, end in enumerate(ends.tolist()):
            text = data[start:end].split(self._comment, 1)[0].rstrip()
            if text.strip():
                kept.append(text + b"\n")
                numbers.append(self._first + number)
            start = end
        current().skip("comments among the numbers")
        block = b"".join(kept)
        self._numbers = np.asarray(numbers, dtype=np.int64)
        return block, np.cumsum([len(t) for t in kept], dtype=np.int64)

    def take(self, count: int) -> Iterator[tuple[bytes, int]]:
        """Pieces ``(text, lines)`` holding the next ``count`` lines."""
        while count > 0:
            if self._line >= len(self._ends) and not self._next_block():
                raise Damaged(f"line {self._next_number:,}: the file ends {count:,} lines early (truncated, "
                              "or the header's counts are wrong)")
            if self._line >= len(self._ends):
                continue
            lines = min(count, len(self._ends) - self._line)
            start = int(self._ends[self._line - 1]) if self._line else 0
            stop = int(self._ends[self._line + lines - 1])
            self.piece_number, self._piece = self.number(), (start, stop)
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

    def after_body(self, more_of: str) -> None:
        """What follows a complete body: nothing, blank lines, or text that is not more of
        ``more_of`` (skipped, and said); more numbers mean the header's counts are wrong."""
        self.skip_blank()
        if self._line >= len(self._ends):
            return
        line = self.number()
        rest = b"".join(block for block, _ in self.rest())
        try:
            numbers = text_numbers(rest)
        except BadText:
            numbers = None
        if numbers is not None and numbers.size:
            raise Damaged(f"line {line:,}: more {more_of} than the header declares (its counts are wrong)")
        current().skip(f"{len(rest):,} bytes of text after the complete body (from line {line:,})")


def words_line(text: bytes, first_number: int) -> str | None:
    """``"line N: ..."`` for the first line of ``text`` that is not numbers, the place an error
    names; None when every line is numbers (lists of other lengths: a variant, not damage).
    Slow; only on the way to an error."""
    for number, line in enumerate(text.splitlines(), first_number):
        try:
            [float(word) for word in line.split()]
        except ValueError:
            return f"line {number:,}: not numbers: {line.strip()[:40]!r}"
    return None


def located(error: BadText, lines: Lines) -> Exception:
    """A BadText in the piece ``lines`` handed out last: Damaged naming the line when a line
    there is not numbers, else the BadText (a layout for trimesh to try)."""
    place = words_line(lines.piece_text, lines.piece_number)
    return Damaged(place) if place else error


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
            whole_numbers(polygons)
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


# A library reader (meshio's, trimesh's) may trust a count its file declares and allocate for
# it before reading a byte of the body: a 4 kB .msh once made meshio touch 19 GB. A real mesh
# file holds its elements, so the memory a read may take is bounded by the file's size.
_LIBRARY_MEMORY_BASE = 256 << 20  # the library's own imports and tables
_LIBRARY_MEMORY_PER_BYTE = 64


@contextlib.contextmanager
def memory_bounded_by_file(size: int) -> Iterator[None]:
    """Cap this process's address space, while a library reads a file of ``size`` bytes, at what
    it uses now plus 256 MiB plus 64 bytes per byte of the file: an allocation past that raises
    MemoryError instead of taking the machine (meshio made 16 GB resident for a 491-byte .msh).
    On Linux, from the main thread (the CLI's info and convert, a script's load): the cap is the
    process's, so another thread allocating more than that during the read would be refused too;
    a read from any other thread (a batch's workers) runs without it."""
    import threading

    try:
        import resource

        with open("/proc/self/statm") as handle:
            in_use = int(handle.read().split()[0]) * resource.getpagesize()
    except (ImportError, OSError, ValueError):
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = in_use + _LIBRARY_MEMORY_BASE + _LIBRARY_MEMORY_PER_BYTE * int(size)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    if soft != resource.RLIM_INFINITY and soft <= cap:
        yield
        return
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
