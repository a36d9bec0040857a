"""mesh-export export (the default command): root ids to files; one id, a batch, or build plates."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from mesh_export.cli.options import (STEP_FLAGS, STEPS_PANEL, SYNAPSE_FLAGS, SynapseFlags, AsciiOpt, CacheDirOpt,
                                     CompressOpt, DatastackOpt, TemplateOpt,
                                     FormatOpt, JsonOpt, LegacyOpt, LodOpt, LodsOpt, NoCacheOpt, OfflineOpt, OutOpt, OverwriteOpt,
                                     QuietOpt, ServerOpt, SourceOpt, StaticOpt, StepFlags, TimeoutOpt, TokenOpt,
                                     VersionOpt, layer_options, variant, with_option_groups)
from mesh_export.cli.output import emit_json
from mesh_export.errors import InvalidArgumentError, MeshExportError

_SOURCE = "Where meshes come from"
_OUTPUT = "Output"
_CACHE = "Cache and network"
_BATCH = "Batch (many ids)"

_Format = variant(FormatOpt, help="Output format (see `mesh-export formats`).", panel=_OUTPUT)
_OutDir = variant(OutOpt, help="Output directory.", panel=_OUTPUT)
_Datastack = variant(DatastackOpt, panel=_SOURCE)
_Version = variant(VersionOpt, help="Materialization version the ids come from (recorded in provenance and the cache key); with --static, the release to use.", panel=_SOURCE)
_Server = variant(ServerOpt, panel=_SOURCE)
_Source = variant(SourceOpt, help="Mesh source URL (precomputed://, graphene://, gs://, s3://, https://, http://, file://) or 'sample'.", panel=_SOURCE)
_Static = variant(StaticOpt, help="The datastack's static multi-resolution meshes: the release of --version, else the newest.", panel=_SOURCE)
_Lod = variant(LodOpt, help="Level of detail for multi-resolution sources: 0 finest, -1 coarsest.", panel=_SOURCE)
_Token = variant(TokenOpt, panel=_SOURCE)
_Ascii = variant(AsciiOpt, help="ASCII variant of a binary format.", panel=_OUTPUT)
_Compress = variant(CompressOpt, panel=_OUTPUT)
_Template = variant(TemplateOpt, panel=_OUTPUT)
_Overwrite = variant(OverwriteOpt, help="Replace existing output files.", panel=_OUTPUT)
_Lods = variant(LodsOpt, panel=_OUTPUT)
_Legacy = variant(LegacyOpt, panel=_OUTPUT)
_CacheDir = variant(CacheDirOpt, panel=_CACHE)
_NoCache = variant(NoCacheOpt, panel=_CACHE)
_Offline = variant(OfflineOpt, panel=_CACHE)
_Timeout = variant(TimeoutOpt, help="Seconds to keep retrying transient failures per mesh.", panel=_CACHE)
_Json = variant(JsonOpt, help="Print one JSON object per id.")
_Quiet = variant(QuietOpt, help="No progress bars, nothing printed on success.")


@with_option_groups
def export_command(
    root_ids: Annotated[Optional[List[str]], typer.Argument(help="Root ids (positive integers); - reads ids from stdin, one per line.", show_default=False)] = None,
    format: _Format = "stl",
    out: _OutDir = Path("."),
    name: Annotated[str, typer.Option("--name", help="File name template: {root_id} {lod} {ext} {format} {datastack}.", rich_help_panel=_OUTPUT)] = "{root_id}_lod{lod}.{ext}",
    datastack: _Datastack = None,
    version: _Version = None,
    server: _Server = None,
    source: _Source = None,
    static: _Static = False,
    dynamic: Annotated[bool, typer.Option("--dynamic", help="Dynamic meshes from the datastack's segmentation (the default).", rich_help_panel=_SOURCE)] = False,
    lod: _Lod = None,
    token: _Token = None,
    processing: StepFlags = STEP_FLAGS,
    synapse_flags: SynapseFlags = SYNAPSE_FLAGS,
    ascii: _Ascii = False,
    compress: _Compress = False,
    template: _Template = None,
    lods: _Lods = None,
    legacy: _Legacy = False,
    overwrite: _Overwrite = False,
    no_sidecar: Annotated[bool, typer.Option("--no-sidecar", help="Do not write the <file>.json provenance sidecar.", rich_help_panel=_OUTPUT)] = False,
    preview: Annotated[bool, typer.Option("--preview", help="Also render <file>.png beside the output (id and lod in the caption).", rich_help_panel=_OUTPUT)] = False,
    cache_dir: _CacheDir = None,
    no_cache: _NoCache = False,
    offline: _Offline = False,
    allow_missing: Annotated[bool, typer.Option("--allow-missing", help="Export a mesh even if some fragments cannot be fetched (flagged in provenance).", rich_help_panel=_CACHE)] = False,
    timeout: _Timeout = 120.0,
    max_connections: Annotated[Optional[int], typer.Option("--max-connections", help="Requests in flight at once (each a connection over HTTP/1.1), all workers together [default: 1024].", rich_help_panel=_CACHE)] = None,
    ids_file: Annotated[Optional[Path], typer.Option("--ids-file", help="Ids to export: one per line, or a CSV/TSV/Parquet column (see --id-column).", rich_help_panel=_BATCH)] = None,
    id_column: Annotated[Optional[str], typer.Option("--id-column", help="Column of --ids-file holding the ids [default: root_id, pt_root_id, segment_id or id].", rich_help_panel=_BATCH)] = None,
    workers: Annotated[int, typer.Option("--workers", "-j", help="Concurrent exports (threads; worker processes with --executor dask-local).", rich_help_panel=_BATCH)] = 1,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop scheduling after the first failed id.", rich_help_panel=_BATCH)] = False,
    max_rps: Annotated[Optional[float], typer.Option("--max-requests-per-second", help="Limit fetch calls per second, shared by all workers.", rich_help_panel=_BATCH)] = None,
    executor: Annotated[str, typer.Option("--executor", help="local (threads), dask (--scheduler) or dask-local (a LocalCluster).", rich_help_panel=_BATCH)] = "local",
    scheduler: Annotated[Optional[str], typer.Option("--scheduler", help="Dask scheduler address, tcp://HOST:PORT (implies --executor dask).", rich_help_panel=_BATCH)] = None,
    no_manifest: Annotated[bool, typer.Option("--no-manifest", help="Batch: do not write <out>/manifest.jsonl.", rich_help_panel=_BATCH)] = False,
    plate: Annotated[Optional[str], typer.Option("--plate", help="With --print: lay all ids out on build plates WIDTHxDEPTH (e.g. 250x210mm): <out>/plate.3mf (one object per id) and plate.stl.", rich_help_panel=STEPS_PANEL)] = None,
    same_scale: Annotated[bool, typer.Option("--same-scale/--each-to-size", help="--plate: one scale for all (the largest is --print SIZE), or each cell to SIZE.", rich_help_panel=STEPS_PANEL)] = True,
    scene: Annotated[Optional[str], typer.Option("--scene", help="Write all ids into ONE file to look at: NAME.glb, .gltf or .vtm (a bare name goes into --out): a node per cell named by its root id, each its own colour (or an --ids-file color column), compartments and synapses with --compartments; mm unless --units.", rich_help_panel=_OUTPUT)] = None,
    color_by: Annotated[str, typer.Option("--color-by", help="--scene: colour each cell (cell) or every cell's compartments (compartment).", rich_help_panel=_OUTPUT)] = "cell",
    as_json: _Json = False,
    quiet: _Quiet = False,
) -> None:
    """Export meshes by root id: `mesh-export ROOT_ID [ROOT_ID ...] --format stl`.

    Several ids (or --ids-file, or - for stdin) run as a resumable batch: see README "Batch"."""
    from mesh_export.api import export, limit_connections

    if static and dynamic:
        raise typer.BadParameter("--static and --dynamic are exclusive")
    if scheduler and executor == "local":
        executor = "dask"
    root_ids = list(root_ids or [])
    if max_connections is not None:
        limit_connections(max_connections)
    kwargs = dict(
        format=format, out_dir=out, name=name, datastack=datastack, version=version,
        server=server, source=source, static=static, lod=lod, token=token, cache_dir=cache_dir,
        use_cache=not no_cache, offline=offline, allow_missing=allow_missing, timeout=timeout,
        steps=processing.step_options(), synapses=synapse_flags.synapse_options(),
        check=processing.check, overwrite=overwrite, sidecar=not no_sidecar, preview=preview,
        ascii=ascii or None, compress=compress or None, allow_units=processing.allow_units or None,
        template=template, layers=layer_options(lods, legacy),
    )
    from mesh_export.api import writes_circuit

    if writes_circuit(format):
        if template:
            raise InvalidArgumentError("--format sonata names each cell's hoc template itself: drop --template")
        if plate is not None:
            raise InvalidArgumentError("--format sonata lays out no build plates: drop --plate")
        _export_batch(root_ids, kwargs, ids_file=ids_file, id_column=id_column, workers=workers,
                      fail_fast=fail_fast, max_rps=max_rps, executor=executor, scheduler=scheduler,
                      manifest=not no_manifest, as_json=as_json, quiet=quiet, circuit=True)
        return
    if scene is not None:
        _export_scene(root_ids, ids_file, id_column, kwargs, scene, color_by, workers, as_json, quiet)
        return
    if plate is not None:
        _export_plate(root_ids, ids_file, id_column, kwargs, plate, same_scale, as_json, quiet)
        return
    batch = (len(root_ids) != 1 or root_ids == ["-"] or ids_file is not None or workers != 1
             or executor != "local" or fail_fast or max_rps is not None)
    if batch and template:
        raise InvalidArgumentError("--template names one cell's hoc template; a batch names each after its root id")
    if not batch:  # one id: the plain job, its own error and exit code
        progress = not quiet and not as_json and sys.stderr.isatty()
        try:
            result = export(root_ids[0], progress=progress, **kwargs)
        except MeshExportError as exc:
            exc.root_id = str(root_ids[0])
            raise
        if as_json:
            emit_json(result.summary())
        elif not quiet:
            typer.echo(_result_line(result.summary()))
        return
    _export_batch(root_ids, kwargs, ids_file=ids_file, id_column=id_column, workers=workers,
                  fail_fast=fail_fast, max_rps=max_rps, executor=executor, scheduler=scheduler,
                  manifest=not no_manifest, as_json=as_json, quiet=quiet)


def _export_plate(root_ids, ids_file, id_column, kwargs, plate, same_scale, as_json, quiet) -> None:
    from mesh_export.api import export_plate, read_ids

    fetch = {k: kwargs[k] for k in ("source", "datastack", "static", "server", "version", "lod", "token",
                                    "cache_dir", "use_cache", "offline", "allow_missing", "timeout")}
    plates = export_plate(read_ids(root_ids, ids_file, id_column), plate=plate, steps=kwargs["steps"],
                          out_dir=kwargs["out_dir"], same_scale=same_scale, overwrite=kwargs["overwrite"], **fetch)
    if as_json:
        emit_json(plates)
    elif not quiet:
        for p in plates:
            typer.echo(f"{p['output']}  plate {p['plate']} of {p['of']}  {len(p['root_ids'])} cells  "
                       f"{p['stl']}" + ("  supports on" if p["supports"] else ""))


def _export_scene(root_ids, ids_file, id_column, kwargs, scene, color_by, workers, as_json, quiet) -> None:
    from mesh_export.api import SceneOptions, export_scene, read_colors, read_ids

    options = SceneOptions(scene, read_colors(ids_file, id_column), color_by)
    result = export_scene(read_ids(root_ids, ids_file, id_column), scene=options, workers=workers, **kwargs)
    if as_json:
        emit_json(result.summary())
    elif not quiet and result.output is not None:
        typer.echo(f"{result.output}  {len(result.cells)} cells  units {result.units}")
    for record in result.failed:
        if not as_json:
            typer.echo(f"mesh-export: error: {record['root_id']}: {record.get('error')}", err=True)
    if result.failed:
        typer.echo(result.summary_table(), err=True)
        if result.output is None:
            typer.echo("mesh-export: error: no cell could be exported: no scene written", err=True)
    sys.exit(result.exit_code)


def _result_line(summary: dict) -> str:
    flag = " INCOMPLETE" if summary.get("incomplete") else ""
    size = f"{summary['faces']:,} faces" if summary.get("faces") is not None else f"{summary.get('nodes') or 0:,} nodes"
    shown = f"  preview {Path(summary['preview']).name}" if summary.get("preview") else ""
    return f"{summary['output']}  {size}  lod {summary['lod']}  cache {summary['cache']}{flag}{shown}"


def _record_printer(as_json: bool, quiet: bool, bar: bool):
    """What a batch prints as each id finishes: its JSON, its error, or its result line."""
    def on_record(record: dict) -> None:
        if as_json:
            emit_json(record)
        elif record.get("status") != "ok":
            typer.echo(f"mesh-export: error: {record['root_id']}: {record.get('error')}", err=True)
        elif not quiet and not bar and not record.get("skipped"):
            typer.echo(_result_line(record))

    return on_record


def _export_batch(root_ids, kwargs, *, ids_file, id_column, workers, fail_fast, max_rps, executor,
                  scheduler, manifest, as_json, quiet, circuit: bool = False) -> None:
    """Many ids: a batch of files, or (``circuit``) one circuit of them all."""
    import os

    from mesh_export.api import export_circuit, export_many, read_ids

    ids = read_ids(root_ids, ids_file, id_column)
    bar = not quiet and not as_json and sys.stderr.isatty()
    on_record = _record_printer(as_json, quiet, bar)
    run = export_circuit if circuit else export_many
    result = run(ids, workers=workers, executor=executor, scheduler=scheduler, manifest=manifest,
                 fail_fast=fail_fast, max_requests_per_second=max_rps, progress=bar,
                 on_record=on_record, **kwargs)
    batch = result.batch if circuit else result
    if circuit:
        _circuit_lines(result, as_json, quiet)
    if not quiet or batch.exit_code != 0:
        typer.echo(batch.summary_table(), err=True)
    if batch.abandoned:  # running exports were left behind: do not wait for their threads
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(result.exit_code)
    sys.exit(result.exit_code)


def _circuit_lines(result, as_json: bool, quiet: bool) -> None:
    if as_json:
        emit_json(result.summary())
    elif result.output is None:
        if not result.batch.interrupted:
            typer.echo("mesh-export: error: no cell was exported: no circuit written", err=True)
    elif not quiet:
        c = result.counts
        typer.echo(f"{result.output}  {c['cells']} cells  {c['partners']} partners  "
                   f"{c['edges_among_cells']} edges among cells  {c['edges_from_partners']} from partners  "
                   f"mechanisms {result.mechanisms}")

