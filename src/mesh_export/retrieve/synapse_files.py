"""A synapse table from a file (``--synapses-file``): CSV, TSV or Parquet with CAVE's column names.

Columns: ``id`` (row numbers when absent), ``pre_pt_root_id`` and ``post_pt_root_id`` (needed
to tell inputs from outputs), ``size`` (optional), ``tag`` (optional: a soma/shaft/spine
prediction), and a position: ``ctr_pt_position`` (else ``post_pt_position``, else
``pre_pt_position``, else ``position``), either as one column of ``[x, y, z]`` (a list in
Parquet, its text in CSV/TSV) or as ``<name>_x``, ``<name>_y``, ``<name>_z`` columns (as
caveclient's ``split_positions`` writes them). Positions are nm unless a voxel resolution is
given (``--synapse-resolution 4,4,40``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from mesh_export.core.synapses import SynapseRows
from mesh_export.errors import InputError, InvalidArgumentError

__all__ = ["read_synapse_file", "parse_resolution", "POSITION_COLUMNS"]

POSITION_COLUMNS = ("ctr_pt_position", "post_pt_position", "pre_pt_position", "position")
#: Integer id columns, read exactly (never through float64).
ID_COLUMNS = ("id", "pre_pt_root_id", "post_pt_root_id")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def parse_resolution(text) -> tuple[float, float, float] | None:
    """"4,4,40" (nm per voxel along x, y, z) -> a tuple; None stays None (positions in nm)."""
    if text is None:
        return None
    values = text if isinstance(text, (tuple, list)) else str(text).replace("x", ",").split(",")
    try:
        out = tuple(float(v) for v in values)
    except ValueError:
        out = ()
    if len(out) != 3 or not all(np.isfinite(v) and v > 0 for v in out):
        raise InvalidArgumentError(f"--synapse-resolution takes three positive numbers X,Y,Z (nm per voxel), "
                                   f"got {text!r}")
    return out


def _frame(path: Path):
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise InvalidArgumentError(f"reading {path} needs pyarrow: pip install pyarrow") from None
            # nullable integers: a root id column with a gap stays int64, not float64
            return pd.read_parquet(path, dtype_backend="numpy_nullable")
        # ids read as text and parsed exactly: through float64 (pandas' type for a column with
        # an empty cell) an 18-digit root id loses its last digits
        ids_as_text = {name: str for name in ID_COLUMNS}
        if suffix in (".tsv", ".tab"):
            return pd.read_csv(path, sep="\t", dtype=ids_as_text)
        if suffix == ".csv":
            return pd.read_csv(path, dtype=ids_as_text)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path} as a synapse table: {str(exc).splitlines()[0]}") from None
    raise InvalidArgumentError(f"--synapses-file takes a .csv, .tsv or .parquet file, not {path.name}")


def _as_point(value) -> list[float]:
    if isinstance(value, str):
        return [float(v) for v in _NUMBER.findall(value)]
    return [float(v) for v in np.asarray(value, dtype=np.float64).reshape(-1)]


def _positions(frame, path: Path) -> tuple[np.ndarray, str]:
    columns = set(frame.columns)
    for name in POSITION_COLUMNS:
        split = [f"{name}_{axis}" for axis in "xyz"]
        if all(c in columns for c in split):
            try:
                return frame[split].to_numpy(dtype=np.float64), name
            except (TypeError, ValueError):
                raise InputError(f"{path}: {name}_x/_y/_z hold values that are not numbers") from None
        if name in columns:
            points = [_as_point(v) for v in frame[name].tolist()]
            bad = [i for i, p in enumerate(points) if len(p) != 3]
            if bad:
                raise InputError(f"{path}: row {bad[0] + 1} of {name} is not [x, y, z]: {frame[name].iloc[bad[0]]!r}")
            return np.asarray(points, dtype=np.float64).reshape(-1, 3), name
    raise InputError(f"{path} has no synapse position: a column {POSITION_COLUMNS[0]} ([x, y, z]) or "
                     f"{POSITION_COLUMNS[0]}_x/_y/_z (or post_pt_/pre_pt_position); it has "
                     f"{', '.join(map(str, frame.columns)) or 'no columns'}")


def _ints(frame, name: str, path: Path):
    """An id column as int64, exactly; an empty cell is 0 (no id)."""
    import pandas as pd

    if name not in frame:
        return None
    column = frame[name]
    missing = column.isna().to_numpy()
    if pd.api.types.is_integer_dtype(column.dtype):
        return column.fillna(0).to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(column.dtype):
        values = column.to_numpy(dtype=np.float64, na_value=0.0)
        if (np.abs(values) >= 2.0**53).any() or (values != np.round(values)).any():
            raise InputError(f"{path}: {name} holds floating-point values, not integer ids "
                             "(an 18-digit root id stored as a float has lost its last digits)")
        return values.astype(np.int64)
    out = np.zeros(len(column), dtype=np.int64)
    for row, value in enumerate(column.tolist()):
        text = "" if missing[row] else str(value).strip()
        if not text:
            continue
        try:
            out[row] = int(text)
        except ValueError:
            raise InputError(f"{path}: row {row + 1} of {name} is not an integer id: {text!r}") from None
    return out


def read_synapse_file(path: str | os.PathLike, resolution=None, root_id: int | None = None) -> SynapseRows:
    """The synapses in ``path`` (see the module docstring) as SynapseRows, positions in nm.
    With ``root_id``, the file must say who is pre- and postsynaptic."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"synapse file not found: {path}")
    frame = _frame(path)
    positions, column = _positions(frame, path)
    scale = parse_resolution(resolution)
    if scale is not None:
        positions = positions * np.asarray(scale)
    pre, post = _ints(frame, "pre_pt_root_id", path), _ints(frame, "post_pt_root_id", path)
    if root_id is not None and (pre is None or post is None):
        raise InputError(f"{path} needs pre_pt_root_id and post_pt_root_id columns to tell root id {root_id}'s "
                         "inputs from its outputs")
    ids = _ints(frame, "id", path)
    size = None
    if "size" in frame:
        try:
            size = frame["size"].to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"{path}: size holds values that are not numbers") from None
    tags = frame["tag"].fillna("").astype(str).to_numpy(dtype=object) if "tag" in frame else None
    units = f"voxels of {','.join(f'{v:g}' for v in scale)} nm" if scale is not None else "nm"
    return SynapseRows(ids if ids is not None else np.arange(len(frame)), pre, post, size, positions, tags,
                       source=f"synapses from {path.name} ({column}, {units})")
