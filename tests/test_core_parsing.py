"""core.parsing: one parser per kind of user input, each named for what it reads."""

from __future__ import annotations

import pytest

from mesh_export.core.parsing import (
    DEFAULT_MAX_MEMORY,
    DEFAULT_PICTURE_SIZE,
    parse_byte_size,
    parse_length,
    parse_memory_budget,
    parse_picture_size,
    parse_plate_size,
    parse_point,
)
from mesh_export.errors import InvalidArgumentError, UnitsError


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


@pytest.mark.parametrize("value, size", [("500MB", 500_000_000), ("1GiB", 2**30), (4096, 4096),
                                         (1.5e6, 1_500_000), (None, parse_byte_size(DEFAULT_MAX_MEMORY))])
def test_memory_budget_is_bytes(value, size):
    assert parse_memory_budget(value) == size


@pytest.mark.parametrize("value", ["lots", "2 GBs", ""])
def test_memory_budget_rejects_nonsense(value):
    with pytest.raises(InvalidArgumentError, match="as a size"):
        parse_memory_budget(value)


@pytest.mark.parametrize("text, mm", [("120mm", 120.0), ("12cm", 120.0), ("0.8 mm", 0.8), ("5", 5.0),
                                      (7, 7.0), (2.5, 2.5), ("1e2mm", 100.0), ("0.5m", 500.0),
                                      ("800um", 0.8), ("800 µm", 0.8), ("2 millimetres", 2.0)])
def test_length_is_millimetres(text, mm):
    assert parse_length(text) == pytest.approx(mm)


def test_length_default_units_apply_to_a_bare_number_only():
    assert parse_length("3", default_units="cm") == pytest.approx(30.0)
    assert parse_length(3, default_units="um") == pytest.approx(0.003)
    assert parse_length("3mm", default_units="cm") == pytest.approx(3.0)


@pytest.mark.parametrize("text, message", [("big", "as a length"), ("12 mm 3", "as a length"), ("-5mm", "as a length"),
                                           ("", "as a length"), ("0mm", "must be positive"), (0, "must be positive"),
                                           (-1.0, "must be positive")])
def test_length_rejects(text, message):
    with pytest.raises(InvalidArgumentError, match=message):
        parse_length(text)


def test_length_in_unknown_units_is_a_units_error():
    with pytest.raises(UnitsError, match="unknown units 'yd'"):
        parse_length("5yd")


@pytest.mark.parametrize("text, point", [("1,2,3", (1.0, 2.0, 3.0)), (" 1.5, -2e3 ,0 ", (1.5, -2000.0, 0.0)),
                                         ("auto", "auto"), (" Mesh ", "mesh"), (None, None)])
def test_point(text, point):
    assert parse_point(text) == point


@pytest.mark.parametrize("text", ["1,2", "1,2,3,4", "a,b,c", "", "1,,3", "nan,0,0", "1,inf,0", "centre"])
def test_point_rejects(text):
    with pytest.raises(InvalidArgumentError, match="--soma takes X,Y,Z in nm, auto or mesh"):
        parse_point(text)
