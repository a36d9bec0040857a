"""Length units (core/units.py): names, aliases, conversion factors, errors."""

from __future__ import annotations

import itertools

import pytest
import trimesh

from mesh_export import errors
from mesh_export.core import units
from mesh_export.core.units import KNOWN_UNITS, conversion_factor, normalize_units, set_mesh_units

METRES = {"nm": 1e-9, "um": 1e-6, "mm": 1e-3, "cm": 1e-2, "m": 1.0, "in": 0.0254, "ft": 0.3048}
# Every spelling the module accepts, written out here so that removing one is noticed.
ALIASES = {
    "nm": ["nanometer", "nanometers", "nanometre", "nanometres"],
    "um": ["micrometer", "micrometers", "micrometre", "micrometres", "micron", "microns",
           "\u00b5m", "\u03bcm"],  # MICRO SIGN and GREEK SMALL LETTER MU
    "mm": ["millimeter", "millimeters", "millimetre", "millimetres"],
    "cm": ["centimeter", "centimeters"],
    "m": ["meter", "meters", "metre", "metres"],
    "in": ["inch", "inches"],  # 3MF's imperial units
    "ft": ["foot", "feet"],
}


def test_the_known_units_are_the_seven_lengths():
    assert KNOWN_UNITS == ("nm", "um", "mm", "cm", "m", "in", "ft")


def test_the_alias_table_is_the_one_listed_here():
    assert units._ALIASES == {alias: short for short, names in ALIASES.items() for alias in names}


@pytest.mark.parametrize("name, canonical", [("nm", "nm"), ("Microns", "um"), ("µm", "um"),
                                             ("millimetre", "mm"), (" m ", "m"), (None, None)])
def test_unit_names(name, canonical):
    assert normalize_units(name) == canonical


@pytest.mark.parametrize("alias, canonical", [(a, s) for s, names in ALIASES.items() for a in [s, *names]])
def test_every_alias_in_any_case_and_padding(alias, canonical):
    for spelling in (alias, alias.upper(), alias.title(), f"  {alias}\t"):
        assert normalize_units(spelling) == canonical, spelling


@pytest.mark.parametrize("src, dst", list(itertools.product(METRES, METRES)))
def test_every_conversion_factor(src, dst):
    assert conversion_factor(src, dst) == pytest.approx(METRES[src] / METRES[dst], rel=1e-12)
    # Aliases convert the same as the short names, and a round trip is the identity.
    assert conversion_factor(ALIASES[src][0], ALIASES[dst][-1]) == conversion_factor(src, dst)
    assert conversion_factor(src, dst) * conversion_factor(dst, src) == pytest.approx(1.0)


def test_unit_conversion_and_unknown_units():
    assert conversion_factor("nm", "um") == pytest.approx(1e-3)
    assert conversion_factor("mm", "nm") == pytest.approx(1e6)
    assert conversion_factor("um", "um") == 1.0
    with pytest.raises(errors.UnitsError, match="unknown units 'furlong'"):
        normalize_units("furlong")


@pytest.mark.parametrize("bad", ["furlong", "", "   ", "yard", "nmm", "micro", "km", "u m", "voxels", 8])
def test_unknown_units_are_a_units_error_naming_the_choices(bad):
    with pytest.raises(errors.UnitsError) as caught:
        normalize_units(bad)
    message = str(caught.value)
    assert message == f"unknown units {bad!r}; use one of nm, um, mm, cm, m, in, ft" and "\n" not in message
    # A ValueError too (library callers), with its own exit code for the CLI.
    assert isinstance(caught.value, ValueError) and errors.UnitsError.exit_code == 7


@pytest.mark.parametrize("src, dst", [("furlong", "nm"), ("nm", "furlong")])
def test_conversion_with_unknown_units_is_a_units_error(src, dst):
    with pytest.raises(errors.UnitsError, match="unknown units 'furlong'"):
        conversion_factor(src, dst)


@pytest.mark.parametrize("src, dst", [(None, "nm"), ("nm", None)])
def test_conversion_from_or_to_unknown_units_raises(src, dst):
    # Callers check for units first (a mesh of unknown units is never converted); here the
    # lookup of None fails (a KeyError today, not a one-line UnitsError).
    with pytest.raises((KeyError, errors.UnitsError)):
        conversion_factor(src, dst)


def test_set_mesh_units_records_the_canonical_name_or_nothing():
    mesh = trimesh.creation.box()
    set_mesh_units(mesh, "Microns")
    assert mesh.metadata["units"] == "um" and mesh.units == "um"
    set_mesh_units(mesh, None)  # unknown: no key at all (trimesh would store the string "none")
    assert "units" not in mesh.metadata
    with pytest.raises(errors.UnitsError):
        set_mesh_units(mesh, "furlong")
    assert "units" not in mesh.metadata
