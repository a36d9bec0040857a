"""mesh-export convert: a local mesh file to any registered format, through the same steps as export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mesh_export.cli.options import (MORPHOLOGY_PANEL, STEP_FLAGS, SYNAPSE_FLAGS, AsciiOpt, CompressOpt, FormatOpt,
                                     JsonOpt, LegacyOpt, LodsOpt, OverwriteOpt, QuietOpt, StepFlags, SynapseFlags,
                                     TemplateOpt, UnitsInOpt, layer_options, variant, with_option_groups)
from mesh_export.cli.output import emit_json

_UnitsOfInput = variant(UnitsInOpt, help="Units of the input when the file does not say (nm, um, mm, cm, m, in, ft).")


def _run_check(mesh_path: Path, print_size, min_feature, max_memory=None) -> dict:
    from mesh_export.api import check
    from mesh_export.errors import CheckFailedError

    report = check(mesh_path, size=print_size, min_feature=min_feature, max_memory=max_memory)
    if report["failures"]:
        raise CheckFailedError(f"{mesh_path}: " + "; ".join(report["failures"]))
    return report


@with_option_groups
def convert_command(
    source: Annotated[Path, typer.Argument(help="Input mesh file (anything trimesh or meshio reads), or an SWC "
                                                "morphology (to swc, hoc or neuroml).")],
    target: Annotated[Path, typer.Argument(help="Output file; its extension picks the format unless --format.")],
    format: FormatOpt = None,
    units_in: _UnitsOfInput = None,
    processing: StepFlags = STEP_FLAGS,
    synapse_flags: SynapseFlags = SYNAPSE_FLAGS,
    root_id: Annotated[Optional[str], typer.Option("--root-id", help="Whose synapses --synapses-file holds: its inputs (post_pt_root_id == ID) are told from its outputs; without it every synapse is placed with direction unknown. --format precomputed: the id the cell has in the layers.", rich_help_panel=MORPHOLOGY_PANEL)] = None,
    ascii: AsciiOpt = False,
    compress: CompressOpt = False,
    template: TemplateOpt = None,
    lods: LodsOpt = None,
    legacy: LegacyOpt = False,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Convert a local mesh file to any registered format."""
    import time

    from mesh_export.api import convert, output_counts
    from mesh_export.model import SURFACE, kind_of

    started = time.perf_counter()
    options = {"ascii": ascii or None, "compress": compress or None, "allow_units": processing.allow_units or None,
               "template": template, "layers": layer_options(lods, legacy)}
    steps = processing.step_options()
    written, mesh = convert(source, target, format=format, units_in=units_in, overwrite=overwrite,
                            steps=steps, return_mesh=True, synapses=synapse_flags.synapse_options(root_id), **options)
    size = (sum(p.stat().st_size for p in written.rglob("*") if p.is_file()) if written.is_dir()
            else written.stat().st_size)  # a directory of layers: what it holds
    result = {"input": str(source), "output": str(written), "bytes": size,
              "units": getattr(mesh, "units", None), **output_counts(mesh, options),
              "steps": mesh.metadata.get("steps", []), "seconds": round(time.perf_counter() - started, 4)}
    if mesh.metadata.get("dropped_cells"):
        result["dropped_cells"] = dict(mesh.metadata["dropped_cells"])
    if mesh.metadata.get("repairs"):
        result["repairs"] = list(mesh.metadata["repairs"])
    for said in ("read", "not_written"):  # what reading skipped, and the arrays the format cannot hold
        if mesh.metadata.get(said):
            result[said] = mesh.metadata[said]
    if mesh.metadata.get("synapse_table"):
        result["synapses"] = mesh.metadata["synapse_table"]
    if processing.check and kind_of(mesh) == SURFACE:
        result["check"] = _run_check(written, steps.print_size, steps.min_feature, steps.max_memory)
    if as_json:
        emit_json(result)
    elif not quiet:
        typer.echo(f"wrote {written} ({result['bytes']:,} bytes)")
        for record in result["steps"]:
            if record.get("step") == "boundary":
                cells = ", ".join(f"{count:,} {name}" for name, count in record["cells"].items())
                typer.echo(f"wrote the boundary of a volume mesh ({cells}): {record['faces']:,} triangles")
        if result.get("dropped_cells"):
            typer.echo("not read: " + ", ".join(f"{count:,} {name.replace('_', ' ')} cells"
                                                for name, count in sorted(result["dropped_cells"].items())))
        for repair in result.get("repairs", []):
            typer.echo(f"repaired: {repair}")
        if result.get("synapses"):
            table = result["synapses"]
            typer.echo(f"wrote {written.with_name(table['file'])} ({table['placed']} of {table['rows']} synapses placed)")
