"""Parsing of user input that every layer shares."""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

from mesh_export.core.units import conversion_factor
from mesh_export.errors import InvalidArgumentError

MAX_ROOT_ID = 2**64 - 1

_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_BYTE_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "kib": 2**10, "m": 1e6, "mb": 1e6, "mib": 2**20,
               "g": 1e9, "gb": 1e9, "gib": 2**30, "t": 1e12, "tb": 1e12, "tib": 2**40}
#: --max-memory when none is given: what voxel remeshing and thickness checks may allocate.
DEFAULT_MAX_MEMORY = "2GB"
_LENGTH = re.compile(r"^\s*(\d+(?:\.\d+)?(?:e[+-]?\d+)?)\s*([a-zµμ]*)\s*$", re.IGNORECASE)
#: A preview picture: the default, and a cap that keeps the z-buffer's memory bounded.
DEFAULT_PICTURE_SIZE = (1200, 800)
MAX_PICTURE_PIXELS = 64_000_000  # 8000 x 8000
_PLATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[x×]\s*(\d+(?:\.\d+)?)\s*(mm|cm)?\s*$", re.IGNORECASE)


def parse_root_id(value: Any) -> int:
    """A root id is a positive integer below 2**64 (uint64 in every connectomics store)."""
    text = str(value).strip()
    if not text.isdigit():
        raise InvalidArgumentError(f"malformed root id {text!r}: expected a positive integer")
    root_id = int(text)
    if root_id == 0 or root_id > MAX_ROOT_ID:
        raise InvalidArgumentError(f"malformed root id {text}: must be between 1 and 2**64-1")
    return root_id


def parse_byte_size(text: str) -> int:
    """``"500MB"`` -> 500_000_000 bytes: decimal (kB, MB ...) and binary (KiB, MiB ...) units."""
    match = _BYTES.match(str(text))
    if not match or (match.group(2) or "").lower() not in _BYTE_UNITS:
        raise InvalidArgumentError(f"cannot read {text!r} as a size (e.g. 500MB, 2GB, 1.5GiB)")
    return int(float(match.group(1)) * _BYTE_UNITS[(match.group(2) or "").lower()])


def parse_memory_budget(max_memory: str | int | float | None) -> int:
    """--max-memory -> bytes: a size like ``"500MB"``, a number of bytes as it is, None the default."""
    if max_memory is None:
        max_memory = DEFAULT_MAX_MEMORY
    return int(max_memory) if isinstance(max_memory, (int, float)) else parse_byte_size(max_memory)


def parse_length(text: str | int | float, default_units: str = "mm") -> float:
    """A length like "120mm", "12cm", "0.8 mm" or a bare number (``default_units``), in mm."""
    if isinstance(text, (int, float)):
        value, units = float(text), default_units
    else:
        match = _LENGTH.match(str(text))
        if not match:
            raise InvalidArgumentError(f"cannot read {text!r} as a length (e.g. 120mm, 12cm)")
        value, units = float(match.group(1)), match.group(2) or default_units
    if not value > 0:
        raise InvalidArgumentError(f"a length must be positive, got {text!r}")
    return value * conversion_factor(units, "mm")


def parse_picture_size(text: str | Sequence[int] | None) -> tuple[int, int]:
    """``"1200x800"`` -> (1200, 800) pixels; None is the default size."""
    if text is None:
        return DEFAULT_PICTURE_SIZE
    if isinstance(text, str):
        parts = text.lower().replace("*", "x").split("x")
        try:
            width, height = (int(p) for p in parts)
        except ValueError:
            raise InvalidArgumentError(f"bad size {text!r}: expected WIDTHxHEIGHT, e.g. 1200x800") from None
    else:
        width, height = (int(v) for v in text)
    if width < 64 or height < 64 or width * height > MAX_PICTURE_PIXELS:
        raise InvalidArgumentError(f"bad size {width}x{height}: each side at least 64 pixels, "
                                   f"at most {MAX_PICTURE_PIXELS:,} pixels in all")
    return width, height


def parse_plate_size(text: str) -> tuple[float, float]:
    """A build plate ``"250x210mm"`` (or cm; mm when no unit) -> (250.0, 210.0) in mm."""
    match = _PLATE.match(str(text))
    if not match:
        raise InvalidArgumentError(f"--plate takes WIDTHxDEPTH, e.g. 250x210mm, got {text!r}")
    factor = 10.0 if (match.group(3) or "mm").lower() == "cm" else 1.0
    width, depth = float(match.group(1)) * factor, float(match.group(2)) * factor
    if not (width > 0 and depth > 0):
        raise InvalidArgumentError(f"--plate sides must be positive, got {text!r}")
    return width, depth


def parse_point(text: str | None) -> tuple[float, float, float] | str | None:
    """"X,Y,Z" -> a point (used by --soma); "auto" and "mesh" are kept as they are."""
    if text is None:
        return None
    if str(text).strip().lower() in ("auto", "mesh"):
        return str(text).strip().lower()
    try:
        point = tuple(float(v) for v in str(text).split(","))
    except ValueError:
        point = ()
    if len(point) != 3 or not all(math.isfinite(v) for v in point):
        raise InvalidArgumentError(f"--soma takes X,Y,Z in nm, auto or mesh, got {text!r}")
    return point
