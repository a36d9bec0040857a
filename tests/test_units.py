"""Length units (core/units.py): names, aliases, conversion factors, errors."""

from __future__ import annotations

import pytest

from mesh_export import errors
from mesh_export.core.units import conversion_factor, normalize_units


@pytest.mark.parametrize("name, canonical", [("nm", "nm"), ("Microns", "um"), ("µm", "um"),
                                             ("millimetre", "mm"), (" m ", "m"), (None, None)])
def test_unit_names(name, canonical):
    assert normalize_units(name) == canonical


def test_unit_conversion_and_unknown_units():
    assert conversion_factor("nm", "um") == pytest.approx(1e-3)
    assert conversion_factor("mm", "nm") == pytest.approx(1e6)
    assert conversion_factor("um", "um") == 1.0
    with pytest.raises(errors.UnitsError, match="unknown units 'furlong'"):
        normalize_units("furlong")
