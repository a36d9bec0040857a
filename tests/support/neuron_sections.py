"""A synapse table's ``section``/``section_x``/``section_id`` checked on the cells NEURON builds:
from our hoc file (its template) and by Import3d from our SWC file."""

from __future__ import annotations

import numpy as np
import pandas as pd

from consumers import load_hoc_in_neuron, load_swc_in_neuron


class NeuronPlaces:
    """``section(x)`` as 3-D points and radii on one NEURON cell (sections looked up by name)."""

    def __init__(self, cell):
        self.cell = cell
        self._lines: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def section(self, name: str):
        array, index = name[:-1].split("[")
        return getattr(self.cell, array)[int(index)]

    def _line(self, name):
        if name not in self._lines:
            sec = self.section(name)
            n = int(sec.n3d())
            arc = np.array([sec.arc3d(i) for i in range(n)])
            points = np.array([[sec.x3d(i), sec.y3d(i), sec.z3d(i)] for i in range(n)])
            diam = np.array([sec.diam3d(i) for i in range(n)])
            self._lines[name] = (arc / arc[-1], points, diam)
        return self._lines[name]

    def at(self, names, xs):
        """The 3-D point and radius of ``section(x)`` per row (NEURON's arc-length rule)."""
        points = np.empty((len(names), 3))
        radii = np.empty(len(names))
        for row, (name, x) in enumerate(zip(names, xs)):
            frac, line, diam = self._line(name)
            points[row] = [np.interp(x, frac, line[:, k]) for k in range(3)]
            radii[row] = np.interp(x, frac, diam) / 2
        return points, radii


def check_sections(table: pd.DataFrame, hoc_path, swc_path) -> dict:
    """Every placed row's section/x on NEURON's cell from our hoc and from Import3d of our
    SWC: one place on both, near the synapse; the figures returned for the record."""
    placed = table["swc_id"].notna().to_numpy()
    assert placed.any()
    section = table["section"].fillna("").to_numpy()
    assert (section[placed] != "").all() and (section[~placed] == "").all()
    assert table.loc[~placed, "section_x"].isna().all() and table.loc[~placed, "section_id"].isna().all()
    rows = table[placed]
    names = rows["section"].to_numpy()
    xs = rows["section_x"].to_numpy()
    assert ((xs > 0) & (xs < 1)).all(), "a point process needing an ion cannot sit at x = 0 or 1"

    hoc_cell, _ = load_hoc_in_neuron(hoc_path)
    swc_cell, _ = load_swc_in_neuron(swc_path)
    figures = {}
    synapse = rows[["x", "y", "z"]].to_numpy()
    points = {}
    for label, cell in (("hoc", hoc_cell), ("import3d", swc_cell)):
        places = NeuronPlaces(cell)
        point, radius = places.at(names, xs)
        points[label] = point
        excess = np.linalg.norm(synapse - point, axis=1) - radius
        within_2 = float(np.mean(excess <= 2.0))
        assert within_2 >= 0.98, (label, within_2)
        assert excess.max() <= 4.0, (label, excess.max())
        # section_id: the section's place in the cell's `all` list, as BMTK's bionet reads it
        everything = list(cell.all)
        for sec_id, name in set(zip(rows["section_id"].astype(int), names)):
            assert everything[sec_id] == places.section(name), (label, sec_id, name)
        figures[label] = {"within_2um": within_2, "max_excess_um": round(float(excess.max()), 3)}
    # one naming: the same section and x are the same point on both cells
    np.testing.assert_allclose(points["hoc"], points["import3d"], rtol=0, atol=2e-3)
    # and the point swc_id/swc_pos name in the SWC file (BMTK's afferent_swc_id/_pos), up to
    # the clamp inside the section's ends
    swc = {int(r[0]): r for r in np.loadtxt(swc_path, comments="#", ndmin=2)}
    ids = rows["swc_id"].astype(int).to_numpy()
    node = np.array([swc[i][2:5] for i in ids])
    parent = np.array([swc[int(swc[i][6])][2:5] if swc[i][6] > 0 else swc[i][2:5] for i in ids])
    swc_point = node + (parent - node) * rows["swc_pos"].to_numpy()[:, None]
    length = np.array([NeuronPlaces(swc_cell).section(name).L for name in names])
    off = np.linalg.norm(points["import3d"] - swc_point, axis=1)
    assert (off <= 2e-4 * length + 2e-3).all(), off.max()
    figures["rows"], figures["placed"] = len(table), int(placed.sum())
    return figures
