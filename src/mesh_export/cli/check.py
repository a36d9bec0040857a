"""mesh-export check: is a mesh file printable (and what it is: bodies, volume, thinnest feature)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mesh_export.cli.options import JsonOpt, MaxMemoryOpt, MinFeatureOpt, PrintOpt, UnitsInOpt, variant
from mesh_export.cli.output import emit_json

_RequiredPrintSize = variant(PrintOpt, help="Required print size of the longest side, e.g. 120mm.", panel=None)
_RequiredMinFeature = variant(MinFeatureOpt, help="Required thinnest feature [default with --print: 0.8mm].", panel=None)
_UnitsOfFile = variant(UnitsInOpt, help="Units of the file when it does not say.")
_ReportJson = variant(JsonOpt, help="Print the report as JSON.")


def check_command(
    path: Annotated[Path, typer.Argument(help="Mesh file to check.")],
    print_size: _RequiredPrintSize = None,
    min_feature: _RequiredMinFeature = None,
    units_in: _UnitsOfFile = None,
    max_memory: MaxMemoryOpt = None,
    as_json: _ReportJson = False,
) -> None:
    """Report watertight, manifold, bodies, volume, bbox and thinnest feature; exit non-zero if
    --print requirements fail."""
    from mesh_export.api import check
    from mesh_export.errors import CheckFailedError

    report = check(path, size=print_size, min_feature=min_feature, max_memory=max_memory, units=units_in)
    if as_json:
        emit_json(report)
    else:
        units = report["units"] or "units unknown"
        typer.echo(f"{path}: {report['faces']:,} faces, {report['bodies']} bodies, "
                   f"watertight {report['watertight']}, volume {report['is_volume']}")
        typer.echo(f"  extents {', '.join(f'{e:.4g}' for e in report['extents'])} ({units})"
                   + (f", volume {report['volume']:.4g}" if report["volume"] is not None else ""))
        if "thinnest_feature" in report:
            typer.echo(f"  thinnest feature ~{report['thinnest_feature']:.3g} {units}")
        for failure in report["failures"]:
            typer.echo(f"  FAIL: {failure}")
    if report["failures"]:
        raise CheckFailedError(f"{path} fails: " + "; ".join(report["failures"]))
