"""Command line: a thin typer layer over mesh_export.api. No logic lives only here.

Heavy libraries are imported inside the commands, so ``mesh-export --help`` starts fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from typing_extensions import Annotated

from mesh_export.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, MeshExportError

app = typer.Typer(
    name="mesh-export",
    help="From a connectomics root id, or any mesh file, to the file you need.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_ARGV_TOKENS: list[str] = []  # tokens given on the command line, scrubbed from error lines


def _emit_json(payload) -> None:
    typer.echo(json.dumps(payload, indent=None, default=str))


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks and debug detail on errors.")] = False,
) -> None:
    """mesh-export: fast, verified mesh and morphology export."""


@app.command("formats")
def formats_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """List every output format: name, extensions, what it accepts, modes and options."""
    from mesh_export.api import formats

    rows = formats()
    if as_json:
        _emit_json(rows)
        return
    header = ("format", "extensions", "accepts", "modes", "options", "via", "description")
    table = [header] + [
        (
            r["name"],
            " ".join(r["extensions"]) or "-",
            ",".join(r["accepts"]),
            "/".join(r["modes"]) or "-",
            ",".join(r["options"]) or "-",
            r["backend"],
            r["description"],
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])


@app.command("datastacks")
def datastacks_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the registry as JSON.")] = False,
) -> None:
    """List the known datastacks: CAVE server, static mesh releases (by version), description.

    Add or override entries in datastacks.toml in the config directory (the last line says where)."""
    from mesh_export.retrieve.datastacks import config_path, registry

    rows = [entry.describe() for entry in registry().values()]
    if as_json:
        _emit_json(rows)
        return
    table = [("datastack", "server", "static releases", "description")]
    for row in rows:
        versions = ", ".join(f"{r['version']}{'*' if r['version'] == row['default_version'] else ''}"
                             for r in row["static"]) or "-"
        table.append((row["name"], row["server"], versions, row["description"]))
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    for r in table:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1])
    typer.echo(f"(* the default for --static; user entries: {config_path()})")


_STEPS = "Processing steps (applied in this order)"
LargestComponentOpt = Annotated[bool, typer.Option("--largest-component", help="Keep only the largest connected piece.", rich_help_panel=_STEPS)]
MinComponentOpt = Annotated[Optional[int], typer.Option("--min-component-faces", help="Drop pieces with fewer faces.", rich_help_panel=_STEPS)]
RepairOpt = Annotated[bool, typer.Option("--repair", help="Merge duplicate vertices, drop degenerate/duplicate faces, fix winding, fill small holes.", rich_help_panel=_STEPS)]
UnitsOpt = Annotated[Optional[str], typer.Option("--units", help="Convert coordinates to these units (nm, um, mm).", rich_help_panel=_STEPS)]
ScaleOpt = Annotated[Optional[float], typer.Option("--scale", help="Multiply coordinates by this factor (after --units).", rich_help_panel=_STEPS)]
WatertightOpt = Annotated[bool, typer.Option("--watertight", help="Closed, manifold, single-shell surface by voxel remeshing.", rich_help_panel=_STEPS)]
PitchOpt = Annotated[Optional[float], typer.Option("--pitch", help="Voxel size for --watertight, in output units [default: longest side / 384].", rich_help_panel=_STEPS)]
MaxMemoryOpt = Annotated[Optional[str], typer.Option("--max-memory", help="Memory budget for remeshing, e.g. 2GB [default: 2GB].", rich_help_panel=_STEPS)]
PrintOpt = Annotated[Optional[str], typer.Option("--print", help="Print-ready: one watertight body, longest side SIZE (e.g. 120mm), mm, on z=0.", rich_help_panel=_STEPS)]
KeepOrientationOpt = Annotated[bool, typer.Option("--keep-orientation", help="--print: keep the cell's orientation instead of standing it on its most stable pose.", rich_help_panel=_STEPS)]
BaseOpt = Annotated[bool, typer.Option("--base", help="--print: a 1 mm plate under the lowest part, for a larger first layer.", rich_help_panel=_STEPS)]
MinFeatureOpt = Annotated[Optional[str], typer.Option("--min-feature", help="Thinnest part at print size [default: 0.8mm].", rich_help_panel=_STEPS)]
SimplifyOpt = Annotated[Optional[float], typer.Option("--simplify", help="Decimate to this fraction of the faces (0-1].", rich_help_panel=_STEPS)]
FacesOpt = Annotated[Optional[int], typer.Option("--faces", help="Decimate to this many faces.", rich_help_panel=_STEPS)]
SmoothOpt = Annotated[Optional[int], typer.Option("--smooth", help="Taubin smoothing iterations.", rich_help_panel=_STEPS)]
CenterOpt = Annotated[bool, typer.Option("--center", help="Move the bounding-box centre to the origin.", rich_help_panel=_STEPS)]
_MORPHOLOGY = "Morphologies (swc, hoc, neuroml)"
SkeletonizeOpt = Annotated[bool, typer.Option("--skeletonize", help="Turn the mesh into a morphology (automatic for swc, hoc, neuroml).", rich_help_panel=_MORPHOLOGY)]
SomaOpt = Annotated[Optional[str], typer.Option("--soma", help="Soma position X,Y,Z in nm; auto: the nucleus from a CAVE datastack's soma table, else found on the mesh (default); mesh: always found on the mesh.", rich_help_panel=_MORPHOLOGY)]
HealOpt = Annotated[bool, typer.Option("--heal/--no-heal", help="Join disconnected pieces into the tree (or drop them).", rich_help_panel=_MORPHOLOGY)]
SkeletonSourceOpt = Annotated[str, typer.Option("--skeleton-source", help="mesh: skeletonize the mesh; cave: the CAVE skeleton service's skeleton (falls back to the mesh).", rich_help_panel=_MORPHOLOGY)]
SynapsesOpt = Annotated[bool, typer.Option("--synapses/--no-synapses", help="Tell the axon (type 2) from the dendrites by the cell's synapses (a CAVE datastack's synapse table).", rich_help_panel=_MORPHOLOGY)]
AllowUnitsOpt = Annotated[bool, typer.Option("--allow-units", help="Let a morphology be written in units other than um (NEURON expects um).", rich_help_panel=_MORPHOLOGY)]
_VOLUME = "Volume meshes (msh, vtu, xdmf, mesh, ...)"
VolumeOpt = Annotated[bool, typer.Option("--volume", help="Tetrahedral mesh of the inside for FEM solvers (TetGen; the 'volume' extra).", rich_help_panel=_VOLUME)]
MaxTetVolumeOpt = Annotated[Optional[float], typer.Option("--max-tet-volume", help="Largest tetrahedron volume, in output units cubed.", rich_help_panel=_VOLUME)]
CheckOpt = Annotated[bool, typer.Option("--check", help="Check the result (watertight, bodies, size, thinnest feature); fail if --print requirements are not met.", rich_help_panel=_STEPS)]


def _step_options(params: dict):
    """The StepOptions of a command, from its parameters: each step flag is named after its field."""
    from dataclasses import fields

    from mesh_export.process.steps import StepOptions, parse_point

    values = {f.name: params[f.name] for f in fields(StepOptions)}
    values["soma"] = parse_point(values["soma"])
    return StepOptions(**values)


def _run_check(mesh_path: Path, print_size, min_feature, max_memory=None) -> dict:
    from mesh_export.api import load
    from mesh_export.process.check import CheckFailedError, check_mesh

    report = check_mesh(load(mesh_path), size=print_size, min_feature=min_feature, max_memory=max_memory)
    if report["failures"]:
        raise CheckFailedError(f"{mesh_path}: " + "; ".join(report["failures"]))
    return report


@app.command("convert")
def convert_command(
    source: Annotated[Path, typer.Argument(help="Input mesh file (anything trimesh or meshio reads).")],
    target: Annotated[Path, typer.Argument(help="Output file; its extension picks the format unless --format.")],
    format: Annotated[Optional[str], typer.Option("--format", "-f", help="Output format name (see `mesh-export formats`).")] = None,
    units_in: Annotated[Optional[str], typer.Option("--units-in", help="Units of the input when the file does not say (nm, um, mm).")] = None,
    largest_component: LargestComponentOpt = False,
    min_component_faces: MinComponentOpt = None,
    repair: RepairOpt = False,
    units: UnitsOpt = None,
    scale: ScaleOpt = None,
    watertight: WatertightOpt = False,
    pitch: PitchOpt = None,
    max_memory: MaxMemoryOpt = None,
    print_size: PrintOpt = None,
    min_feature: MinFeatureOpt = None,
    keep_orientation: KeepOrientationOpt = False,
    base: BaseOpt = False,
    simplify: SimplifyOpt = None,
    faces: FacesOpt = None,
    smooth: SmoothOpt = None,
    center: CenterOpt = False,
    check: CheckOpt = False,
    skeletonize: SkeletonizeOpt = False,
    soma: SomaOpt = None,
    heal: HealOpt = True,
    skeleton_source: SkeletonSourceOpt = "mesh",
    synapses: SynapsesOpt = True,
    allow_units: AllowUnitsOpt = False,
    volume: VolumeOpt = False,
    max_tet_volume: MaxTetVolumeOpt = None,
    ascii: Annotated[bool, typer.Option("--ascii", help="Write the ASCII variant of a binary format (stl, ply, vtk).")] = False,
    compress: Annotated[bool, typer.Option("--compress", help="zlib-compress (vtp, vtu).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")] = False,
) -> None:
    """Convert a local mesh file to any registered format."""
    import time

    from mesh_export.api import convert

    started = time.perf_counter()
    options = {"ascii": ascii or None, "compress": compress or None, "allow_units": allow_units or None}
    steps = _step_options(locals())
    written, mesh = convert(source, target, format=format, units_in=units_in, overwrite=overwrite,
                            steps=steps, return_mesh=True, **options)
    from mesh_export.jobs.export import _counts

    result = {"input": str(source), "output": str(written), "bytes": written.stat().st_size,
              "units": getattr(mesh, "units", None), **_counts(mesh, options), "steps": mesh.metadata.get("steps", []),
              "seconds": round(time.perf_counter() - started, 4)}
    if check and hasattr(mesh, "faces"):
        result["check"] = _run_check(written, print_size, min_feature, max_memory)
    if as_json:
        _emit_json(result)
    elif not quiet:
        typer.echo(f"wrote {written} ({result['bytes']:,} bytes)")


_SOURCE = "Where meshes come from"
_OUTPUT = "Output"
_CACHE = "Cache and network"
_BATCH = "Batch (many ids)"


@app.command("export")
def export_command(
    root_ids: Annotated[Optional[List[str]], typer.Argument(help="Root ids (positive integers); - reads ids from stdin, one per line.", show_default=False)] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="Output format (see `mesh-export formats`).", rich_help_panel=_OUTPUT)] = "stl",
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.", rich_help_panel=_OUTPUT)] = Path("."),
    name: Annotated[str, typer.Option("--name", help="File name template: {root_id} {lod} {ext} {format} {datastack}.", rich_help_panel=_OUTPUT)] = "{root_id}_lod{lod}.{ext}",
    datastack: Annotated[Optional[str], typer.Option("--datastack", help="CAVE datastack (see `mesh-export datastacks`) [default: minnie65_public].", rich_help_panel=_SOURCE)] = None,
    version: Annotated[Optional[int], typer.Option("--version", help="Materialization version the ids come from (recorded in provenance and the cache key); with --static, the release to use.", rich_help_panel=_SOURCE)] = None,
    server: Annotated[Optional[str], typer.Option("--server", help="CAVE server URL [default: the datastack's own].", rich_help_panel=_SOURCE)] = None,
    source: Annotated[Optional[str], typer.Option("--source", help="Mesh source URL (precomputed://, graphene://, gs://, s3://, https://, http://, file://) or 'sample'.", rich_help_panel=_SOURCE)] = None,
    static: Annotated[bool, typer.Option("--static", help="The datastack's static multi-resolution meshes: the release of --version, else the newest.", rich_help_panel=_SOURCE)] = False,
    dynamic: Annotated[bool, typer.Option("--dynamic", help="Dynamic meshes from the datastack's segmentation (the default).", rich_help_panel=_SOURCE)] = False,
    lod: Annotated[Optional[int], typer.Option("--lod", help="Level of detail for multi-resolution sources: 0 finest, -1 coarsest.", rich_help_panel=_SOURCE)] = None,
    token: Annotated[Optional[str], typer.Option("--token", help="CAVE token [default: $CAVE_TOKEN, then caveclient's secret file].", rich_help_panel=_SOURCE)] = None,
    largest_component: LargestComponentOpt = False,
    min_component_faces: MinComponentOpt = None,
    repair: RepairOpt = False,
    units: UnitsOpt = None,
    scale: ScaleOpt = None,
    watertight: WatertightOpt = False,
    pitch: PitchOpt = None,
    max_memory: MaxMemoryOpt = None,
    print_size: PrintOpt = None,
    min_feature: MinFeatureOpt = None,
    keep_orientation: KeepOrientationOpt = False,
    base: BaseOpt = False,
    simplify: SimplifyOpt = None,
    faces: FacesOpt = None,
    smooth: SmoothOpt = None,
    center: CenterOpt = False,
    check: CheckOpt = False,
    skeletonize: SkeletonizeOpt = False,
    soma: SomaOpt = None,
    heal: HealOpt = True,
    skeleton_source: SkeletonSourceOpt = "mesh",
    synapses: SynapsesOpt = True,
    allow_units: AllowUnitsOpt = False,
    volume: VolumeOpt = False,
    max_tet_volume: MaxTetVolumeOpt = None,
    ascii: Annotated[bool, typer.Option("--ascii", help="ASCII variant of a binary format.", rich_help_panel=_OUTPUT)] = False,
    compress: Annotated[bool, typer.Option("--compress", help="zlib-compress (vtp, vtu).", rich_help_panel=_OUTPUT)] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.", rich_help_panel=_OUTPUT)] = False,
    no_sidecar: Annotated[bool, typer.Option("--no-sidecar", help="Do not write the <file>.json provenance sidecar.", rich_help_panel=_OUTPUT)] = False,
    preview: Annotated[bool, typer.Option("--preview", help="Also render <file>.png beside the output (id and lod in the caption).", rich_help_panel=_OUTPUT)] = False,
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="Cache directory [default: $MESH_EXPORT_CACHE or the platform cache dir].", rich_help_panel=_CACHE)] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the cache.", rich_help_panel=_CACHE)] = False,
    offline: Annotated[bool, typer.Option("--offline", help="Serve from the cache only; never touch the network.", rich_help_panel=_CACHE)] = False,
    allow_missing: Annotated[bool, typer.Option("--allow-missing", help="Export a mesh even if some fragments cannot be fetched (flagged in provenance).", rich_help_panel=_CACHE)] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to keep retrying transient failures per mesh.", rich_help_panel=_CACHE)] = 120.0,
    ids_file: Annotated[Optional[Path], typer.Option("--ids-file", help="Ids to export: one per line, or a CSV/TSV/Parquet column (see --id-column).", rich_help_panel=_BATCH)] = None,
    id_column: Annotated[Optional[str], typer.Option("--id-column", help="Column of --ids-file holding the ids [default: root_id, pt_root_id, segment_id or id].", rich_help_panel=_BATCH)] = None,
    workers: Annotated[int, typer.Option("--workers", "-j", help="Concurrent exports (threads; worker processes with --executor dask-local).", rich_help_panel=_BATCH)] = 1,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop scheduling after the first failed id.", rich_help_panel=_BATCH)] = False,
    max_rps: Annotated[Optional[float], typer.Option("--max-requests-per-second", help="Limit fetch calls per second, shared by all workers.", rich_help_panel=_BATCH)] = None,
    executor: Annotated[str, typer.Option("--executor", help="local (threads), dask (--scheduler) or dask-local (a LocalCluster).", rich_help_panel=_BATCH)] = "local",
    scheduler: Annotated[Optional[str], typer.Option("--scheduler", help="Dask scheduler address, tcp://HOST:PORT (implies --executor dask).", rich_help_panel=_BATCH)] = None,
    no_manifest: Annotated[bool, typer.Option("--no-manifest", help="Batch: do not write <out>/manifest.jsonl.", rich_help_panel=_BATCH)] = False,
    plate: Annotated[Optional[str], typer.Option("--plate", help="With --print: lay all ids out on build plates WIDTHxDEPTH (e.g. 250x210mm): <out>/plate.3mf (one object per id) and plate.stl.", rich_help_panel=_STEPS)] = None,
    same_scale: Annotated[bool, typer.Option("--same-scale/--each-to-size", help="--plate: one scale for all (the largest is --print SIZE), or each cell to SIZE.", rich_help_panel=_STEPS)] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per id.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars, nothing printed on success.")] = False,
) -> None:
    """Export meshes by root id: `mesh-export ROOT_ID [ROOT_ID ...] --format stl`.

    Several ids (or --ids-file, or - for stdin) run as a resumable batch: see README "Batch"."""
    from mesh_export.jobs.export import export

    if static and dynamic:
        raise typer.BadParameter("--static and --dynamic are exclusive")
    if scheduler and executor == "local":
        executor = "dask"
    root_ids = list(root_ids or [])
    kwargs = dict(
        format=format, out_dir=out, name=name, datastack=datastack, version=version,
        server=server, source=source, static=static, lod=lod, token=token, cache_dir=cache_dir,
        use_cache=not no_cache, offline=offline, allow_missing=allow_missing, timeout=timeout,
        steps=_step_options(locals()),
        check=check, overwrite=overwrite, sidecar=not no_sidecar, preview=preview,
        ascii=ascii or None, compress=compress or None, allow_units=allow_units or None,
    )
    if plate is not None:
        _export_plate(root_ids, ids_file, id_column, kwargs, plate, same_scale, as_json, quiet)
        return
    batch = (len(root_ids) != 1 or root_ids == ["-"] or ids_file is not None or workers != 1
             or executor != "local" or fail_fast or max_rps is not None)
    if not batch:  # one id: the plain job, its own error and exit code
        progress = not quiet and not as_json and sys.stderr.isatty()
        try:
            result = export(root_ids[0], progress=progress, **kwargs)
        except MeshExportError as exc:
            exc.root_id = str(root_ids[0])
            raise
        if as_json:
            _emit_json(result.summary())
        elif not quiet:
            typer.echo(_result_line(result.summary()))
        return
    _export_batch(root_ids, kwargs, ids_file=ids_file, id_column=id_column, workers=workers,
                  fail_fast=fail_fast, max_rps=max_rps, executor=executor, scheduler=scheduler,
                  manifest=not no_manifest, as_json=as_json, quiet=quiet)


def _export_plate(root_ids, ids_file, id_column, kwargs, plate, same_scale, as_json, quiet) -> None:
    from ..jobs.batch import read_ids
    from ..jobs.plate import export_plate

    fetch = {k: kwargs[k] for k in ("source", "datastack", "static", "server", "version", "lod", "token",
                                    "cache_dir", "use_cache", "offline", "allow_missing", "timeout")}
    plates = export_plate(read_ids(root_ids, ids_file, id_column), plate=plate, steps=kwargs["steps"],
                          out_dir=kwargs["out_dir"], same_scale=same_scale, overwrite=kwargs["overwrite"], **fetch)
    if as_json:
        _emit_json(plates)
    elif not quiet:
        for p in plates:
            typer.echo(f"{p['output']}  plate {p['plate']} of {p['of']}  {len(p['root_ids'])} cells  "
                       f"{p['stl']}" + ("  supports on" if p["supports"] else ""))


def _result_line(summary: dict) -> str:
    flag = " INCOMPLETE" if summary.get("incomplete") else ""
    size = f"{summary['faces']:,} faces" if summary.get("faces") is not None else f"{summary.get('nodes') or 0:,} nodes"
    shown = f"  preview {Path(summary['preview']).name}" if summary.get("preview") else ""
    return f"{summary['output']}  {size}  lod {summary['lod']}  cache {summary['cache']}{flag}{shown}"


def _export_batch(root_ids, kwargs, *, ids_file, id_column, workers, fail_fast, max_rps, executor,
                  scheduler, manifest, as_json, quiet) -> None:
    import os

    from mesh_export.jobs.batch import export_many, read_ids

    ids = read_ids(root_ids, ids_file, id_column)
    bar = not quiet and not as_json and sys.stderr.isatty()

    def on_record(record: dict) -> None:
        if as_json:
            _emit_json(record)
        elif record.get("status") != "ok":
            typer.echo(f"mesh-export: error: {record['root_id']}: {record.get('error')}", err=True)
        elif not quiet and not bar and not record.get("skipped"):
            typer.echo(_result_line(record))

    result = export_many(ids, workers=workers, executor=executor, scheduler=scheduler, manifest=manifest,
                         fail_fast=fail_fast, max_requests_per_second=max_rps, progress=bar,
                         on_record=on_record, **kwargs)
    if not quiet or result.exit_code != 0:
        typer.echo(result.summary_table(), err=True)
    if result.abandoned:  # running exports were left behind: do not wait for their threads
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(result.exit_code)
    sys.exit(result.exit_code)


@app.command("check")
def check_command(
    path: Annotated[Path, typer.Argument(help="Mesh file to check.")],
    print_size: Annotated[Optional[str], typer.Option("--print", help="Required print size of the longest side, e.g. 120mm.")] = None,
    min_feature: Annotated[Optional[str], typer.Option("--min-feature", help="Required thinnest feature [default with --print: 0.8mm].")] = None,
    units_in: Annotated[Optional[str], typer.Option("--units-in", help="Units of the file when it does not say.")] = None,
    max_memory: MaxMemoryOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Report watertight, manifold, bodies, volume, bbox and thinnest feature; exit non-zero if
    --print requirements fail."""
    from mesh_export.api import load
    from mesh_export.process.check import CheckFailedError, check_mesh

    report = check_mesh(load(path, units=units_in), size=print_size, min_feature=min_feature,
                        max_memory=max_memory)
    if as_json:
        _emit_json(report)
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


cache_app = typer.Typer(help="Inspect and manage the mesh cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
_CACHE_DIR_OPTION = typer.Option("--cache-dir", help="Cache directory [default: $MESH_EXPORT_CACHE or the platform cache dir].")


@cache_app.command("info")
def cache_info(
    cache_dir: Annotated[Optional[Path], _CACHE_DIR_OPTION] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Where the cache is, how many meshes it holds and their size."""
    from mesh_export.retrieve.cache import MeshCache

    info = MeshCache(cache_dir).info()
    if as_json:
        _emit_json(info)
    else:
        typer.echo(f"{info['directory']}: {info['entries']} meshes, {info['bytes']:,} bytes")


@cache_app.command("clear")
def cache_clear(cache_dir: Annotated[Optional[Path], _CACHE_DIR_OPTION] = None) -> None:
    """Delete every cached mesh."""
    from mesh_export.retrieve.cache import MeshCache

    typer.echo(f"removed {MeshCache(cache_dir).clear()} cached meshes")


@cache_app.command("prune")
def cache_prune(
    max_size: Annotated[str, typer.Option("--max-size", help="Keep at most this much, e.g. 2GB; least recently used go first.")],
    cache_dir: Annotated[Optional[Path], _CACHE_DIR_OPTION] = None,
) -> None:
    """Drop least recently used meshes until the cache fits in --max-size."""
    from mesh_export.core.parsing import parse_byte_size
    from mesh_export.retrieve.cache import MeshCache

    result = MeshCache(cache_dir).prune(parse_byte_size(max_size))
    typer.echo(f"removed {result['removed']}, kept {result['entries']} meshes ({result['bytes']:,} bytes)")


auth_app = typer.Typer(help="CAVE authentication.", no_args_is_help=True)
app.add_typer(auth_app, name="auth")


@auth_app.command("status")
def auth_status(
    token: Annotated[Optional[str], typer.Option("--token", help="A token to check instead of the configured one.")] = None,
    server: Annotated[Optional[str], typer.Option("--server", help="CAVE server URL (for server-specific secret files).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Say which token would be used and where it comes from, without printing it."""
    from mesh_export.retrieve.auth import TOKEN_HELP, resolve_token

    found = resolve_token(token, server)
    if as_json:
        _emit_json({"origin": found.origin, "fingerprint": found.fingerprint, "present": bool(found.value)})
    elif found.value:
        typer.echo(f"token from {found.origin} (sha256 {found.fingerprint}...)")
    else:
        typer.echo(f"no token configured: {TOKEN_HELP}")


# ------------------------------------------------------------- look before exporting
# info / preview / link / compare: a root id (fetched through the cache, like export) or a file.

_LOOK = "Where meshes come from (root ids)"
_Datastack = Annotated[Optional[str], typer.Option("--datastack", help="CAVE datastack (see `mesh-export datastacks`) [default: minnie65_public].", rich_help_panel=_LOOK)]
_Version = Annotated[Optional[int], typer.Option("--version", help="Materialization version to pin; with --static, the release to use.", rich_help_panel=_LOOK)]
_Server = Annotated[Optional[str], typer.Option("--server", help="CAVE server URL [default: the datastack's own].", rich_help_panel=_LOOK)]
_Source = Annotated[Optional[str], typer.Option("--source", help="Mesh source URL or 'sample' (as for export).", rich_help_panel=_LOOK)]
_Static = Annotated[bool, typer.Option("--static", help="The datastack's static multi-resolution meshes (--version's release, else the newest).", rich_help_panel=_LOOK)]
_Token = Annotated[Optional[str], typer.Option("--token", help="CAVE token [default: $CAVE_TOKEN, then caveclient's secret file].", rich_help_panel=_LOOK)]
_CacheDir = Annotated[Optional[Path], typer.Option("--cache-dir", help="Cache directory [default: $MESH_EXPORT_CACHE or the platform cache dir].", rich_help_panel=_LOOK)]
_NoCache = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the cache.", rich_help_panel=_LOOK)]
_Offline = Annotated[bool, typer.Option("--offline", help="Serve from the cache only; never touch the network.", rich_help_panel=_LOOK)]
_Timeout = Annotated[float, typer.Option("--timeout", help="Seconds to keep retrying transient failures.", rich_help_panel=_LOOK)]
_UnitsIn = Annotated[Optional[str], typer.Option("--units-in", help="Units of a file that does not say (nm, um, mm).")]
_Views = Annotated[str, typer.Option("--views", help="Comma-separated views: xy, xz, yz, iso.")]
_Size = Annotated[str, typer.Option("--size", help="Picture size WIDTHxHEIGHT in pixels.")]


def _look_options(datastack, version, server, source, static, token, cache_dir, no_cache, offline, timeout) -> dict:
    return {"datastack": datastack, "version": version, "server": server, "source": source, "static": static,
            "token": token, "cache_dir": cache_dir, "use_cache": not no_cache, "offline": offline,
            "timeout": timeout}


@app.command("info")
def info_command(
    target: Annotated[str, typer.Argument(help="A root id, or a mesh or SWC file.")],
    lod: Annotated[Optional[int], typer.Option("--lod", help="Level of detail (root ids on multi-resolution sources).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    no_lods: Annotated[bool, typer.Option("--no-lods", help="Do not fetch the other lods to count their faces.")] = False,
    units_in: _UnitsIn = None,
    datastack: _Datastack = None, version: _Version = None, server: _Server = None, source: _Source = None,
    static: _Static = False, token: _Token = None, cache_dir: _CacheDir = None, no_cache: _NoCache = False,
    offline: _Offline = False, timeout: _Timeout = 120.0,
) -> None:
    """Figures of a mesh or skeleton: counts, bbox, area, volume, watertight, pieces, lods, source, cache."""
    from mesh_export.look.info import format_info, info

    options = _look_options(datastack, version, server, source, static, token, cache_dir, no_cache, offline, timeout)
    result = info(target, lod=lod, list_lods=not no_lods, units=units_in, **options)
    if as_json:
        _emit_json(result)
    else:
        typer.echo(format_info(result))


@app.command("preview")
def preview_command(
    target: Annotated[str, typer.Argument(help="A root id, or a mesh or SWC file.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="PNG to write [default: <id or file stem>.png].")] = None,
    views: _Views = "xy",
    size: _Size = "1200x800",
    lod: Annotated[Optional[int], typer.Option("--lod", help="Level of detail (root ids on multi-resolution sources).")] = None,
    caption: Annotated[Optional[str], typer.Option("--caption", help="Caption text [default: id, lod, faces, datastack].")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing PNG.")] = False,
    units_in: _UnitsIn = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")] = False,
    datastack: _Datastack = None, version: _Version = None, server: _Server = None, source: _Source = None,
    static: _Static = False, token: _Token = None, cache_dir: _CacheDir = None, no_cache: _NoCache = False,
    offline: _Offline = False, timeout: _Timeout = 120.0,
) -> None:
    """Render a shaded PNG offscreen (no display, no GPU), with a scale bar in um and a caption."""
    from mesh_export.core.atomic import check_target
    from mesh_export.look.info import load_target
    from mesh_export.core.parsing import parse_picture_size
    from mesh_export.look.preview import parse_views, render_png, target_caption

    parse_views(views), parse_picture_size(size)  # bad arguments fail before any download
    if out is None:
        out = Path(f"{Path(target).stem if not str(target).strip().isdigit() else str(target).strip()}.png")
    check_target(out, overwrite)
    options = _look_options(datastack, version, server, source, static, token, cache_dir, no_cache, offline, timeout)
    obj, meta = load_target(target, lod=lod, units=units_in, **options)
    result = render_png(obj, out, views=views, size=size, caption=caption or target_caption(obj, meta, target),
                        overwrite=overwrite)
    if as_json:
        _emit_json(result.summary() | {"cache": meta.get("cache")})
    elif not quiet:
        scale = f"{result.um_per_pixel:.4g} um/pixel" if result.um_per_pixel else "units unknown"
        typer.echo(f"wrote {result.path} ({result.size[0]}x{result.size[1]}, {scale})")


@app.command("link")
def link_command(
    root_id: Annotated[str, typer.Argument(help="Root id to show.")],
    datastack: Annotated[Optional[str], typer.Option("--datastack", help="CAVE datastack [default: minnie65_public].")] = None,
    source: Annotated[Optional[str], typer.Option("--source", help="Segmentation source URL instead of the datastack's.")] = None,
    static: Annotated[bool, typer.Option("--static", help="The datastack's static meshes (no CAVE request, no token).")] = False,
    server: _Server = None, token: _Token = None,
    viewer: Annotated[Optional[str], typer.Option("--viewer", help="Neuroglancer viewer URL [default: the datastack's public viewer, else neuroglancer-demo.appspot.com].")] = None,
    timeout: _Timeout = 60.0,
) -> None:
    """Print a Neuroglancer URL showing the segment (viewer state JSON in the URL fragment)."""
    from mesh_export.look.link import neuroglancer_url

    typer.echo(neuroglancer_url(root_id, datastack=datastack, source=source, static=static, server=server,
                                token=token, viewer=viewer, timeout=timeout))


@app.command("compare")
def compare_command(
    a: Annotated[str, typer.Argument(help="First mesh: a root id or a file.")],
    b: Annotated[str, typer.Argument(help="Second mesh: a root id or a file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")] = Path("compare.png"),
    lod_a: Annotated[Optional[int], typer.Option("--lod-a", help="Level of detail of A (root ids).")] = None,
    lod_b: Annotated[Optional[int], typer.Option("--lod-b", help="Level of detail of B (root ids).")] = None,
    views: _Views = "xy",
    size: _Size = "1200x800",
    samples: Annotated[int, typer.Option("--samples", help="Surface samples per mesh for the Hausdorff distance.")] = 200_000,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing PNG.")] = False,
    units_in: _UnitsIn = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    datastack: _Datastack = None, version: _Version = None, server: _Server = None, source: _Source = None,
    static: _Static = False, token: _Token = None, cache_dir: _CacheDir = None, no_cache: _NoCache = False,
    offline: _Offline = False, timeout: _Timeout = 120.0,
) -> None:
    """Two meshes side by side in one PNG, with their counts and the Hausdorff distance."""
    from mesh_export.look.compare import compare

    options = _look_options(datastack, version, server, source, static, token, cache_dir, no_cache, offline, timeout)
    result = compare(a, b, out, lod_a=lod_a, lod_b=lod_b, views=views, size=size, samples=samples,
                     overwrite=overwrite, units=units_in, **options)
    if as_json:
        _emit_json(result.summary)
    else:
        faces = [result.summary[side]["faces"] for side in "ab"]
        typer.echo(f"A {faces[0]:,} faces   B {faces[1]:,} faces   {result.caption}")
        typer.echo(f"wrote {result.summary['output']}")


def _one_line(exc: BaseException) -> str:
    from mesh_export.retrieve.auth import redact, resolve_token

    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    # Library messages can echo a URL or header: never print a token, whichever way it came.
    for token in (resolve_token().value, *_ARGV_TOKENS):
        line = redact(line, token)
    return line


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point: run the CLI, map errors to one line and an exit code."""
    import click

    args = list(sys.argv[1:] if argv is None else argv)
    _ARGV_TOKENS[:] = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--token"]
    _ARGV_TOKENS.extend(a.split("=", 1)[1] for a in args if a.startswith("--token="))
    verbose = "--verbose" in args or "-v" in args
    args = [a for a in args if a not in ("--verbose", "-v")]
    command = typer.main.get_command(app)
    # `mesh-export 864691135572530981 --format stl`: anything that is not a subcommand
    # (or a request for help) is an export.
    if args and args[0] not in command.commands and args[0] not in ("--help", "-h"):
        args.insert(0, "export")
    if verbose:
        args.insert(0, "--verbose")
    # typer >= 0.2x parses with a vendored copy of click whose exceptions are not click's: take
    # each class from both, so a usage error is exit 2 and a message, not an "internal error".
    usage_errors = tuple({click.ClickException, *(c for c in typer.BadParameter.__mro__
                                                  if c.__name__ == "ClickException")})
    exits = tuple({click.exceptions.Exit, typer.Exit})
    aborts = tuple({click.exceptions.Abort, typer.Abort})
    try:
        command.main(args=args, prog_name="mesh-export", standalone_mode=False)
    except exits as exc:
        sys.exit(exc.exit_code)
    except aborts:
        typer.echo("mesh-export: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except usage_errors as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except MeshExportError as exc:
        if verbose:
            import traceback

            traceback.print_exc()
        typer.echo(f"mesh-export: error: {_one_line(exc)}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("mesh-export: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # a bug: say so in one line, traceback only on request
        if verbose:
            import traceback

            traceback.print_exc()
        typer.echo(f"mesh-export: internal error: {type(exc).__name__}: {_one_line(exc)} "
                   "(rerun with --verbose for the traceback)", err=True)
        sys.exit(EXIT_INTERNAL)
