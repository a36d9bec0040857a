"""The synapse table beside a morphology: ``<file>.synapses.csv`` (or ``.parquet``).

One row per synapse of the :class:`~mesh_export.core.synapses.SynapseTable` the Skeleton
carries, placed or not:

``synapse_id, direction, partner_root_id, size, x, y, z`` (the morphology's units),
``swc_id`` (the node's id as our SWC writes it: 1-based, in the written order) and ``swc_pos``
(from that node towards its parent, 0-1, as BMTK's ``afferent_swc_id``/``afferent_swc_pos``),
``section`` and ``section_x`` (NEURON's, when a node -> section function is given: see
:func:`synapse_columns`), ``distance_to_axis`` (the morphology's units), ``tag`` (soma/shaft/spine) and ``tag_source``
(predicted/measured), ``spine_swc_id`` (the tip of the drawn spine it sits on), ``reason``
(why a row has no ``swc_id``). Empty fields are empty in CSV and null in Parquet.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from mesh_export.core.atomic import atomic_output, check_target
from mesh_export.core.units import conversion_factor
from mesh_export.errors import InvalidArgumentError, InvalidSkeletonError

__all__ = ["synapse_columns", "write_synapse_table", "read_synapse_table", "table_path", "FORMATS", "COLUMNS"]

FORMATS = {"csv": ".synapses.csv", "parquet": ".synapses.parquet"}
COLUMNS = ("synapse_id", "direction", "partner_root_id", "size", "x", "y", "z", "swc_id", "swc_pos",
           "section", "section_x", "distance_to_axis", "tag", "tag_source", "spine_swc_id", "reason")


_INTEGERS = ("synapse_id", "partner_root_id", "swc_id", "spine_swc_id")


def table_path(morphology: str | os.PathLike, format: str = "csv") -> Path:
    """``<file>.synapses.csv`` (or ``.parquet``) beside the morphology ``<file>``."""
    if format not in FORMATS:
        raise InvalidArgumentError(f"--synapses-format is csv or parquet, not {format!r}")
    morphology = Path(morphology)
    return morphology.with_name(morphology.name + FORMATS[format])


def _written_ids(skeleton) -> np.ndarray:
    """The SWC id of each node of ``skeleton`` as writers.swc numbers them (1-based, in
    topological order, which as_skeleton_for_writing applies)."""
    order = skeleton.topological_order()
    rank = np.empty(len(skeleton), dtype=np.int64)
    rank[order] = np.arange(len(skeleton))
    return rank + 1


#: Where a point process may sit on a section: never at 0 or 1 (an ion-using mechanism cannot).
SECTION_X_MARGIN = 1e-4


def sections_at(skeleton, node: np.ndarray, pos: np.ndarray, names, xs) -> tuple[np.ndarray, np.ndarray]:
    """(section name, x) of the points ``pos`` of the way from each ``node`` to its parent,
    given the section name and x of every node (``names``, ``xs``: per node of ``skeleton``, in
    its order; a node's x is its 3-D point's place in its section, as NEURON's arc length).

    Within a section x is linear in arc length, so a point between a node and its parent in the
    same section is at their x's weighted by ``pos``; a node whose parent is in another section
    begins its own, whose x = 0 is the parent's point (Import3d starts a child section there).
    A soma point is at the soma's middle (0.5). Every x is kept within :data:`SECTION_X_MARGIN`
    of the ends."""
    from mesh_export.model import SOMA

    names, xs = np.asarray(names, dtype=object), np.asarray(xs, dtype=np.float64)
    parent = np.where(skeleton.parents[node] >= 0, skeleton.parents[node], node)
    same = names[parent] == names[node]
    x = np.where(same, xs[node] + (xs[parent] - xs[node]) * pos, xs[node] * (1.0 - pos))
    x = np.where(skeleton.types[node] == SOMA, 0.5, x)
    return names[node], np.clip(x, SECTION_X_MARGIN, 1.0 - SECTION_X_MARGIN)


def synapse_columns(skeleton, units: str = "um", sections=None) -> dict[str, Any]:
    """The table's columns (numpy arrays; None where a field is empty) for ``skeleton``'s
    synapses, lengths in ``units``. ``sections``: a function of the skeleton as written giving
    each node's NEURON section name and x (``sections(skeleton) -> (names, xs)``, see
    :func:`sections_at`); with it, the ``section`` and ``section_x`` columns."""
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
    columns = {
        "synapse_id": rows.ids,
        "direction": table.direction.astype(str),
        "partner_root_id": np.where(table.partner != 0, table.partner, -1),
        "size": rows.size,
        "x": rows.positions[:, 0] * to_units, "y": rows.positions[:, 1] * to_units,
        "z": rows.positions[:, 2] * to_units,
        "swc_id": np.where(placed, swc[node], -1),
        "swc_pos": np.where(placed, table.pos, np.nan),
        "distance_to_axis": np.where(placed, table.distance * to_units, np.nan),
        "tag": table.tag.astype(str),
        "tag_source": table.tag_source.astype(str),
        "spine_swc_id": np.where(spine, swc[np.maximum(table.spine_node, 0)], -1),
        "reason": table.reason.astype(str),
    }
    if sections is not None:
        names, xs = sections(skeleton)
        section, x = sections_at(skeleton, node, table.pos, names, xs)
        columns["section"] = np.where(placed, section, "").astype(str)
        columns["section_x"] = np.where(placed, x, np.nan)
    return columns


def _frame(columns: dict[str, Any]):
    import pandas as pd

    frame = pd.DataFrame({name: columns[name] for name in COLUMNS if name in columns}
                         | {k: v for k, v in columns.items() if k not in COLUMNS})
    for name in ("partner_root_id", "swc_id", "spine_swc_id"):  # -1: no value
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
    for name in ("tag", "tag_source", "reason", "section"):
        if name in frame:
            frame[name] = frame[name].where(frame[name] != "", None)
    return frame


def write_synapse_table(skeleton, morphology: str | os.PathLike, *, units: str = "um", format: str = "csv",
                        overwrite: bool = False, sections=None) -> Path:
    """Write ``skeleton``'s synapses beside the morphology file ``morphology`` (atomically);
    ``sections`` as for :func:`synapse_columns`."""
    target = check_target(table_path(morphology, format), overwrite)
    frame = _frame(synapse_columns(skeleton, units, sections))
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
