"""The synapse table beside a morphology: ``<file>.synapses.csv`` (or ``.parquet``).

One row per synapse of the :class:`~mesh_export.core.synapses.SynapseTable` the Skeleton
carries, placed or not:

``synapse_id, direction, partner_root_id, size, x, y, z`` (the morphology's units),
``swc_id`` (the node's id as our SWC writes it: 1-based, in the written order) and ``swc_pos``
(from that node towards its parent, 0-1, as BMTK's ``afferent_swc_id``/``afferent_swc_pos``),
``section`` and ``section_x`` (where NEURON puts it: ``dend[12]``, 0 < x < 1, the same on the
cell our hoc file builds and on the cell NEURON's Import3d builds of our SWC; see
:func:`synapse_sections`), ``section_id`` (that section's position in the cell's ``all``
SectionList: SONATA's ``afferent_section_id`` for an input, ``efferent_section_id`` for an
output, with ``section_x`` as its ``_section_pos``), ``distance_to_axis`` (the morphology's
units), ``tag`` (soma/shaft/spine) and ``tag_source`` (predicted/measured), ``spine_swc_id``
(the tip of the drawn spine it sits on), ``reason`` (why a row has no ``swc_id``). Empty
fields are empty in CSV and null in Parquet.
"""

from __future__ import annotations

import os
from pathlib import Path
from dataclasses import dataclass
from typing import Any

import numpy as np

from mesh_export.core.atomic import atomic_output, check_target
from mesh_export.core.units import conversion_factor
from mesh_export.errors import InvalidArgumentError, InvalidSkeletonError

__all__ = ["synapse_columns", "synapse_sections", "sections_at", "SectionPlaces", "write_synapse_table",
           "read_synapse_table", "table_path", "FORMATS", "COLUMNS", "X_MARGIN"]

FORMATS = {"csv": ".synapses.csv", "parquet": ".synapses.parquet"}
COLUMNS = ("synapse_id", "direction", "partner_root_id", "size", "x", "y", "z", "swc_id", "swc_pos", "section",
           "section_x", "section_id", "distance_to_axis", "tag", "tag_source", "spine_swc_id", "reason")
#: ``section_x`` is kept this far (a fraction of the section) inside 0 and 1: a point process at
#: a section's end sits on its zero-area end node, where a mechanism that needs an ion cannot go.
#: 1e-4 moves a synapse at most 0.1 um on a 1 mm section, and survives the 6 decimals written.
X_MARGIN = 1e-4
#: Columns read back as integers (pandas' nullable Int64): a root id through float64 loses digits.
_INTEGERS = ("synapse_id", "partner_root_id", "swc_id", "section_id", "spine_swc_id")


@dataclass
class SectionPlaces:
    """Where NEURON puts each row of a synapse table: ``section`` (``"dend[12]"``; '' where the
    row is not placed), ``x`` (0 < x < 1; NaN where not placed), ``section_id`` (the section's
    position in the cell's ``all`` SectionList; -1 where not placed), per row; ``names`` lists
    the sections in ``all`` order (``names[section_id] == section``)."""

    section: np.ndarray
    x: np.ndarray
    section_id: np.ndarray
    names: list


def synapse_sections(skeleton) -> SectionPlaces:
    """The NEURON section and x of each row of ``skeleton.synapses`` (a mapped
    :class:`~mesh_export.core.synapses.SynapseTable`): :func:`sections_at` its rows' (node, pos)."""
    table = skeleton.synapses
    return sections_at(skeleton, np.where(table.placed, table.node, -1), table.pos)


def sections_at(skeleton, node, pos) -> SectionPlaces:
    """Where NEURON puts the points ``pos`` (0-1) of the way from ``node`` (indices into
    ``skeleton``; -1: no point) towards its parent (BMTK's ``afferent_swc_id``/``_pos``, a
    synapse table's rows), one answer for both ways NEURON builds the cell: loading our hoc
    file (``h.load_file`` and its template) and Import3d loading our SWC file (the hoc writer
    writes exactly Import3d's sections, ``core.import3d``).

    The section is the one Import3d puts that stretch of cable in, and ``x`` the fraction of
    the section's 3-D arc length at the point (how NEURON maps x to a 3-D point), clamped
    :data:`X_MARGIN` inside 0 and 1. A one-point soma is a sphere whose centre is
    ``soma[0](0.5)``. ``section_id`` numbers the sections as the cell's ``all`` SectionList
    lists them on both loads (types in ascending order, soma axon dend apic then custom
    types, each by index), which is how BMTK's bionet reads SONATA's ``afferent_section_id``
    (``list(cell.all)[afferent_section_id]``, bmtk 1.2 ``BioCell.set_sec_array``; bionet uses
    NEURON's own import3d.hoc unless ``run: use_old_import3d``). BMTK models that replace the
    axon with a stub (``aibs_perisomatic``'s ``fix_axon_peri``, ``BioAxonStub``) delete the
    axon sections and append two new ones at the end of ``all``: on those cells the
    dendrites' ids are smaller by the number of axon sections, and points on the axon have
    no section.
    """
    from mesh_export.writers._neuron_sections import places_of_points, rank_in

    node = np.asarray(node, dtype=np.int64).reshape(-1)
    placed = node >= 0
    pos = np.where(placed, np.asarray(pos, dtype=np.float64).reshape(-1), 0.0)
    places = places_of_points(skeleton, np.maximum(node, 0), pos)
    sections = places.sections
    n_sections = len(sections)
    order = sorted(range(n_sections), key=lambda k: (sections[k].type, sections[k].index))
    all_position = rank_in(np.asarray(order, dtype=np.int64))
    names = np.array([f"{sec.name}[{sec.index}]" for sec in sections], dtype=object)
    k = places.section
    x = np.clip(places.x, X_MARGIN, 1.0 - X_MARGIN)
    return SectionPlaces(section=np.where(placed, names[k], ""),
                         x=np.where(placed, x, np.nan),
                         section_id=np.where(placed, all_position[k], -1),
                         names=[str(names[j]) for j in order])


def table_path(morphology: str | os.PathLike, format: str = "csv") -> Path:
    """``<file>.synapses.csv`` (or ``.parquet``) beside the morphology ``<file>``."""
    if format not in FORMATS:
        raise InvalidArgumentError(f"--synapses-format is csv or parquet, not {format!r}")
    morphology = Path(morphology)
    return morphology.with_name(morphology.name + FORMATS[format])


def _written_ids(skeleton) -> np.ndarray:
    """The SWC id of each node of ``skeleton`` as writers.swc numbers them (1-based, in
    topological order, which as_skeleton_for_writing applies)."""
    from mesh_export.writers._neuron_sections import rank_in

    return rank_in(skeleton.topological_order()) + 1


def synapse_columns(skeleton, units: str = "um") -> dict[str, Any]:
    """The table's columns (numpy arrays; None where a field is empty) for ``skeleton``'s
    synapses, lengths in ``units``."""
    table = skeleton.synapses
    placed = table.placed
    node = np.maximum(table.node, 0)
    nodes_nm = skeleton.nodes * conversion_factor(skeleton.units, "nm")
    if len(node) and not np.allclose(nodes_nm[node[placed]], table.anchors[placed], rtol=0, atol=1e-3):
        raise InvalidSkeletonError("the synapse table no longer matches its skeleton's nodes (reordered after mapping)")
    to_units = conversion_factor("nm", units)
    swc = _written_ids(skeleton)
    rows = table.rows
    spine = table.spine_node >= 0
    places = synapse_sections(skeleton)
    return {
        "synapse_id": rows.ids,
        "direction": table.direction.astype(str),
        "partner_root_id": np.where(table.partner != 0, table.partner, -1),
        "size": rows.size,
        "x": rows.positions[:, 0] * to_units, "y": rows.positions[:, 1] * to_units,
        "z": rows.positions[:, 2] * to_units,
        "swc_id": np.where(placed, swc[node], -1),
        "swc_pos": np.where(placed, table.pos, np.nan),
        "section": places.section.astype(str),
        "section_x": places.x,
        "section_id": places.section_id,
        "distance_to_axis": np.where(placed, table.distance * to_units, np.nan),
        "tag": table.tag.astype(str),
        "tag_source": table.tag_source.astype(str),
        "spine_swc_id": np.where(spine, swc[np.maximum(table.spine_node, 0)], -1),
        "reason": table.reason.astype(str),
    }


def _frame(columns: dict[str, Any]):
    import pandas as pd

    frame = pd.DataFrame({name: columns[name] for name in COLUMNS if name in columns}
                         | {k: v for k, v in columns.items() if k not in COLUMNS})
    for name in ("partner_root_id", "swc_id", "section_id", "spine_swc_id"):  # -1: no value
        values = frame[name].to_numpy()
        frame[name] = pd.array(np.where(values >= 0, values, 0), dtype="Int64")
        frame.loc[values < 0, name] = pd.NA
    size = frame["size"].to_numpy()
    given = np.isfinite(size)
    if (size[given] == np.round(size[given])).all():  # CAVE's sizes are voxel counts: keep them integers
        frame["size"] = pd.array(np.where(given, size, 0).astype(np.int64), dtype="Int64")
        frame.loc[~given, "size"] = pd.NA
    for name in ("x", "y", "z", "distance_to_axis"):
        frame[name] = frame[name].round(4)
    frame["swc_pos"] = frame["swc_pos"].round(5)
    frame["section_x"] = frame["section_x"].round(6)
    for name in ("section", "tag", "tag_source", "reason"):
        frame[name] = frame[name].where(frame[name] != "", None)
    return frame


def write_synapse_table(skeleton, morphology: str | os.PathLike, *, units: str = "um", format: str = "csv",
                        overwrite: bool = False) -> Path:
    """Write ``skeleton``'s synapses beside the morphology file ``morphology`` (atomically)."""
    target = check_target(table_path(morphology, format), overwrite)
    frame = _frame(synapse_columns(skeleton, units))
    with atomic_output(target, overwrite=overwrite, checked=True) as tmp:
        if format == "parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise InvalidArgumentError("--synapses-format parquet needs pyarrow: pip install pyarrow") from None
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
    return target


def read_synapse_table(path: str | os.PathLike):
    """A table :func:`write_synapse_table` wrote (CSV or Parquet, by its name) as a pandas
    DataFrame with integer columns that may be empty as pandas' nullable Int64; an InputError
    names a file that is missing or lacks the columns."""
    import pandas as pd

    from mesh_export.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"synapse table not found: {path}")
    try:
        if path.name.endswith(FORMATS["parquet"]):
            frame = pd.read_parquet(path)
        else:
            # Integers parsed as such: a root id through float64 (a column with empties) loses digits.
            frame = pd.read_csv(path, dtype={"direction": str, "tag": str, "tag_source": str, "reason": str,
                                             **{name: "Int64" for name in _INTEGERS}})
    except (ValueError, TypeError, OSError) as exc:
        raise InputError(f"{path}: not a synapse table ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    missing = [c for c in COLUMNS if c not in frame]
    if missing:
        raise InputError(f"{path}: not a synapse table mesh-export wrote (no {', '.join(missing)})")
    return frame
