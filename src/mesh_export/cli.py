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

from .errors import MeshExportError

app = typer.Typer(
    name="mesh-export",
    help="From a connectomics root id, or any mesh file, to the file you need.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Internal errors (bugs) get their own code so scripts can tell them from bad input.
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


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
    from .api import formats

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


@app.command("convert")
def convert_command(
    source: Annotated[Path, typer.Argument(help="Input mesh file (anything trimesh or meshio reads).")],
    target: Annotated[Path, typer.Argument(help="Output file; its extension picks the format unless --format.")],
    format: Annotated[Optional[str], typer.Option("--format", "-f", help="Output format name (see `mesh-export formats`).")] = None,
    units_in: Annotated[Optional[str], typer.Option("--units-in", help="Units of the input when the file does not say (nm, um, mm).")] = None,
    units: Annotated[Optional[str], typer.Option("--units", help="Convert coordinates to these units (nm, um, mm).")] = None,
    scale: Annotated[Optional[float], typer.Option("--scale", help="Multiply coordinates by this factor (after --units).")] = None,
    ascii: Annotated[bool, typer.Option("--ascii", help="Write the ASCII variant of a binary format (stl, ply, vtk).")] = False,
    compress: Annotated[bool, typer.Option("--compress", help="zlib-compress (vtp, vtu).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")] = False,
) -> None:
    """Convert a local mesh file to any registered format."""
    import time

    from .api import convert

    started = time.perf_counter()
    options = {"ascii": ascii or None, "compress": compress or None}
    written = convert(source, target, format=format, units_in=units_in, units=units, scale=scale,
                      overwrite=overwrite, **options)
    result = {"input": str(source), "output": str(written), "bytes": written.stat().st_size,
              "seconds": round(time.perf_counter() - started, 4)}
    if as_json:
        _emit_json(result)
    elif not quiet:
        typer.echo(f"wrote {written} ({result['bytes']:,} bytes)")


_SOURCE = "Where meshes come from"
_OUTPUT = "Output"
_CACHE = "Cache and network"


@app.command("export")
def export_command(
    root_ids: Annotated[List[str], typer.Argument(help="One or more root ids (positive integers).", show_default=False)],
    format: Annotated[str, typer.Option("--format", "-f", help="Output format (see `mesh-export formats`).", rich_help_panel=_OUTPUT)] = "stl",
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.", rich_help_panel=_OUTPUT)] = Path("."),
    name: Annotated[str, typer.Option("--name", help="File name template: {root_id} {lod} {ext} {format} {datastack}.", rich_help_panel=_OUTPUT)] = "{root_id}_lod{lod}.{ext}",
    datastack: Annotated[Optional[str], typer.Option("--datastack", help="CAVE datastack [default: minnie65_public].", rich_help_panel=_SOURCE)] = None,
    version: Annotated[Optional[int], typer.Option("--version", help="Materialization version to pin (recorded in provenance).", rich_help_panel=_SOURCE)] = None,
    server: Annotated[Optional[str], typer.Option("--server", help="CAVE server URL [default: caveclient's global server].", rich_help_panel=_SOURCE)] = None,
    source: Annotated[Optional[str], typer.Option("--source", help="Mesh source URL (precomputed://, graphene://, gs://, s3://, https://, http://, file://) or 'sample'.", rich_help_panel=_SOURCE)] = None,
    static: Annotated[bool, typer.Option("--static", help="Static multi-resolution meshes of the datastack.", rich_help_panel=_SOURCE)] = False,
    dynamic: Annotated[bool, typer.Option("--dynamic", help="Dynamic meshes from the datastack's segmentation (the default).", rich_help_panel=_SOURCE)] = False,
    lod: Annotated[Optional[int], typer.Option("--lod", help="Level of detail for multi-resolution sources: 0 finest, -1 coarsest.", rich_help_panel=_SOURCE)] = None,
    token: Annotated[Optional[str], typer.Option("--token", help="CAVE token [default: $CAVE_TOKEN, then caveclient's secret file].", rich_help_panel=_SOURCE)] = None,
    units: Annotated[Optional[str], typer.Option("--units", help="Convert from nm to these units (um, mm).", rich_help_panel=_OUTPUT)] = None,
    scale: Annotated[Optional[float], typer.Option("--scale", help="Multiply coordinates by this factor (after --units).", rich_help_panel=_OUTPUT)] = None,
    ascii: Annotated[bool, typer.Option("--ascii", help="ASCII variant of a binary format.", rich_help_panel=_OUTPUT)] = False,
    compress: Annotated[bool, typer.Option("--compress", help="zlib-compress (vtp, vtu).", rich_help_panel=_OUTPUT)] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.", rich_help_panel=_OUTPUT)] = False,
    no_sidecar: Annotated[bool, typer.Option("--no-sidecar", help="Do not write the <file>.json provenance sidecar.", rich_help_panel=_OUTPUT)] = False,
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="Cache directory [default: $MESH_EXPORT_CACHE or the platform cache dir].", rich_help_panel=_CACHE)] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the cache.", rich_help_panel=_CACHE)] = False,
    offline: Annotated[bool, typer.Option("--offline", help="Serve from the cache only; never touch the network.", rich_help_panel=_CACHE)] = False,
    allow_missing: Annotated[bool, typer.Option("--allow-missing", help="Export a mesh even if some fragments cannot be fetched (flagged in provenance).", rich_help_panel=_CACHE)] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to keep retrying transient failures per mesh.", rich_help_panel=_CACHE)] = 120.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per id.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars, nothing printed on success.")] = False,
) -> None:
    """Export meshes by root id: `mesh-export ROOT_ID [ROOT_ID ...] --format stl`."""
    from .export import export_many

    if static and dynamic:
        raise typer.BadParameter("--static and --dynamic are exclusive")
    progress = not quiet and not as_json and sys.stderr.isatty()
    results = export_many(
        root_ids, format=format, out_dir=out, name=name, datastack=datastack, version=version,
        server=server, source=source, static=static, lod=lod, token=token, cache_dir=cache_dir,
        use_cache=not no_cache, offline=offline, allow_missing=allow_missing, timeout=timeout,
        units=units, scale=scale, overwrite=overwrite, sidecar=not no_sidecar, progress=progress,
        ascii=ascii or None, compress=compress or None,
    )
    failures = [r for r in results if isinstance(r, MeshExportError)]
    for result in results:
        if isinstance(result, MeshExportError):
            if as_json:
                _emit_json({"root_id": result.root_id, "status": "error", "error": _one_line(result),
                            "error_type": type(result).__name__, "exit_code": result.exit_code})
            continue
        if as_json:
            _emit_json(result.summary())
        elif not quiet:
            summary = result.summary()
            flag = " INCOMPLETE" if summary["incomplete"] else ""
            typer.echo(f"{result.output}  {summary['faces']:,} faces  lod {summary['lod']}  "
                       f"cache {summary['cache']}{flag}")
    if failures:
        if len(results) == 1:
            raise failures[0]
        for failure in failures:
            typer.echo(f"mesh-export: error: {failure.root_id}: {_one_line(failure)}", err=True)
        sys.exit(failures[-1].exit_code)


cache_app = typer.Typer(help="Inspect and manage the mesh cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
_CACHE_DIR_OPTION = typer.Option("--cache-dir", help="Cache directory [default: $MESH_EXPORT_CACHE or the platform cache dir].")


@cache_app.command("info")
def cache_info(
    cache_dir: Annotated[Optional[Path], _CACHE_DIR_OPTION] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Where the cache is, how many meshes it holds and their size."""
    from .cache import MeshCache

    info = MeshCache(cache_dir).info()
    if as_json:
        _emit_json(info)
    else:
        typer.echo(f"{info['directory']}: {info['entries']} meshes, {info['bytes']:,} bytes")


@cache_app.command("clear")
def cache_clear(cache_dir: Annotated[Optional[Path], _CACHE_DIR_OPTION] = None) -> None:
    """Delete every cached mesh."""
    from .cache import MeshCache

    typer.echo(f"removed {MeshCache(cache_dir).clear()} cached meshes")


@cache_app.command("prune")
def cache_prune(
    max_size: Annotated[str, typer.Option("--max-size", help="Keep at most this much, e.g. 2GB; least recently used go first.")],
    cache_dir: Annotated[Optional[Path], _CACHE_DIR_OPTION] = None,
) -> None:
    """Drop least recently used meshes until the cache fits in --max-size."""
    from .cache import MeshCache, parse_size

    result = MeshCache(cache_dir).prune(parse_size(max_size))
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
    from .auth import TOKEN_HELP, resolve_token

    found = resolve_token(token, server)
    if as_json:
        _emit_json({"origin": found.origin, "fingerprint": found.fingerprint, "present": bool(found.value)})
    elif found.value:
        typer.echo(f"token from {found.origin} (sha256 {found.fingerprint}...)")
    else:
        typer.echo(f"no token configured: {TOKEN_HELP}")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point: run the CLI, map errors to one line and an exit code."""
    import click

    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in args or "-v" in args
    args = [a for a in args if a not in ("--verbose", "-v")]
    command = typer.main.get_command(app)
    # `mesh-export 864691135572530981 --format stl`: anything that is not a subcommand
    # (or a request for help) is an export.
    if args and args[0] not in command.commands and args[0] not in ("--help", "-h"):
        args.insert(0, "export")
    if verbose:
        args.insert(0, "--verbose")
    try:
        command.main(args=args, prog_name="mesh-export", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        typer.echo("mesh-export: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
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
