"""core.parsing: one parser per kind of user input, each named for what it reads."""

from __future__ import annotations

import pytest

from mesh_export.core.parsing import (
    DEFAULT_PICTURE_SIZE,
    parse_byte_size,
    parse_picture_size,
    parse_plate_size,
)
from mesh_export.errors import InvalidArgumentError


@pytest.mark.parametrize("text, size", [("500MB", 500_000_000), ("2GB", 2_000_000_000), ("1.5GiB", 1.5 * 2**30),
                                        ("10", 10), ("4 kib", 4096), ("1 T", 10**12)])
def test_byte_size(text, size):
    assert parse_byte_size(text) == int(size)


@pytest.mark.parametrize("text", ["lots", "5 MiBs", "-1GB", "", "1.5.2MB"])
def test_byte_size_rejects_nonsense(text):
    with pytest.raises(InvalidArgumentError, match="as a size"):
        parse_byte_size(text)


@pytest.mark.parametrize("text, size", [("1200x800", (1200, 800)), ("64X64", (64, 64)), ("640*480", (640, 480)),
                                        ((300, 200), (300, 200)), (None, DEFAULT_PICTURE_SIZE)])
def test_picture_size(text, size):
    assert parse_picture_size(text) == size


@pytest.mark.parametrize("text, message", [("big", "expected WIDTHxHEIGHT"), ("10x10x10", "expected WIDTHxHEIGHT"),
                                           ("63x800", "at least 64 pixels"), ("9000x9000", "64,000,000 pixels")])
def test_picture_size_rejects(text, message):
    with pytest.raises(InvalidArgumentError, match=message):
        parse_picture_size(text)


@pytest.mark.parametrize("text, size", [("250x210mm", (250.0, 210.0)), ("250 x 210", (250.0, 210.0)),
                                        ("25x21cm", (250.0, 210.0)), ("180×180MM", (180.0, 180.0)),
                                        ("120.5x80", (120.5, 80.0))])
def test_plate_size_is_millimetres(text, size):
    assert parse_plate_size(text) == size


@pytest.mark.parametrize("text, message", [("250", "WIDTHxDEPTH"), ("250x210in", "WIDTHxDEPTH"),
                                           ("0x210", "positive"), ("250x0mm", "positive")])
def test_plate_size_rejects(text, message):
    with pytest.raises(InvalidArgumentError, match=message):
        parse_plate_size(text)
