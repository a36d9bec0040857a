"""Root ids for a batch: from arguments, stdin, a text file, or a CSV/TSV/Parquet column."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterable, Iterator

from mesh_export.errors import InputError, InvalidArgumentError

_ID_COLUMNS = ("root_id", "pt_root_id", "segment_id", "id")


def _ids_from_lines(lines: Iterable[str]) -> Iterator[str]:
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if text:
            yield text.split(",")[0].split()[0].strip()


def _ids_from_csv(path: Path, column: str | None) -> list[str]:
    import csv

    with open(path, newline="") as handle:
        sample = handle.read(4096)
        handle.seek(0)
        dialect = csv.Sniffer().sniff(sample, delimiters=",\t;") if sample.strip() else csv.excel
        rows = list(csv.reader(handle, dialect))
    if not rows:
        return []
    header = [h.strip() for h in rows[0]]
    if column is None:
        if header and header[0].isdigit():  # no header: the first column holds the ids
            return [r[0].strip() for r in rows if r and r[0].strip()]
    index = header.index(_id_column(path, column, header))
    return [r[index].strip() for r in rows[1:] if len(r) > index and r[index].strip()]


def _id_column(path: Path, column: str | None, names: list[str]) -> str:
    """The column holding the ids: the one asked for, or a conventional name."""
    if column is None:
        column = next((c for c in _ID_COLUMNS if c in names), None)
        if column is None:
            raise InvalidArgumentError(f"{path}: which column holds the ids? pass --id-column "
                                       f"(columns: {', '.join(names)})")
    if column not in names:
        raise InvalidArgumentError(f"{path} has no column {column!r} (columns: {', '.join(names)})")
    return column


def _ids_from_parquet(path: Path, column: str | None) -> list[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InvalidArgumentError(f"reading {path} needs pyarrow: pip install pyarrow") from None
    try:
        names = pq.read_schema(path).names
    except Exception as exc:
        raise InvalidArgumentError(f"cannot read {path} as Parquet: {exc}") from None
    column = _id_column(path, column, names)
    values = pq.read_table(path, columns=[column]).column(column).to_pylist()
    return [str(v) for v in values if v is not None]


def read_ids(args: Iterable[str] = (), ids_file: str | os.PathLike | None = None,
             id_column: str | None = None, stdin=None) -> list[str]:
    """Root ids from arguments (``-`` reads stdin, one per line), then ``ids_file``: one per
    line, or a CSV/TSV or Parquet column (``id_column``; default the first of root_id,
    pt_root_id, segment_id, id). Duplicates are dropped (first kept); ids are validated by
    the per-id job, so one malformed id fails alone."""
    ids: list[str] = []
    for arg in args or ():
        if str(arg).strip() == "-":
            ids.extend(_ids_from_lines(stdin if stdin is not None else sys.stdin))
        else:
            ids.append(str(arg).strip())
    if ids_file is not None:
        path = Path(ids_file)
        if not path.is_file():
            raise InputError(f"ids file not found: {path}")
        suffix = path.suffix.lower()
        if suffix in (".parquet", ".pq"):
            ids.extend(_ids_from_parquet(path, id_column))
        elif suffix in (".csv", ".tsv") or id_column is not None:
            ids.extend(_ids_from_csv(path, id_column))
        else:
            with open(path) as handle:
                ids.extend(_ids_from_lines(handle))
    return list(dict.fromkeys(ids))


def read_colors(ids_file: str | os.PathLike | None, id_column: str | None = None,
                column: str = "color") -> dict[str, str]:
    """Root id -> the ``color`` column's text of a CSV/TSV/Parquet ids file (empty when the file
    has no such column, or is plain text)."""
    if ids_file is None:
        return {}
    path = Path(ids_file)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        names = pq.read_schema(path).names
        if column not in names:
            return {}
        key = _id_column(path, id_column, names)
        table = pq.read_table(path, columns=[key, column]).to_pydict()
        return {str(i): str(c) for i, c in zip(table[key], table[column]) if i is not None and c}
    if suffix not in (".csv", ".tsv") and id_column is None:
        return {}
    import csv

    with open(path, newline="") as handle:
        sample = handle.read(4096)
        handle.seek(0)
        dialect = csv.Sniffer().sniff(sample, delimiters=",\t;") if sample.strip() else csv.excel
        rows = list(csv.reader(handle, dialect))
    header = [h.strip() for h in rows[0]] if rows else []
    if column not in header:
        return {}
    key, at = header.index(_id_column(path, id_column, header)), header.index(column)
    return {r[key].strip(): r[at].strip() for r in rows[1:] if len(r) > max(key, at) and r[at].strip()}
