"""Parsing of user input that every layer shares."""

from __future__ import annotations

from typing import Any

from mesh_export.errors import InvalidArgumentError

MAX_ROOT_ID = 2**64 - 1


def parse_root_id(value: Any) -> int:
    """A root id is a positive integer below 2**64 (uint64 in every connectomics store)."""
    text = str(value).strip()
    if not text.isdigit():
        raise InvalidArgumentError(f"malformed root id {text!r}: expected a positive integer")
    root_id = int(text)
    if root_id == 0 or root_id > MAX_ROOT_ID:
        raise InvalidArgumentError(f"malformed root id {text}: must be between 1 and 2**64-1")
    return root_id
