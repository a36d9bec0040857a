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


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point: run the CLI, map errors to one line and an exit code."""
    import click

    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in args or "-v" in args
    if verbose:
        args = ["--verbose"] + [a for a in args if a not in ("--verbose", "-v")]
    command = typer.main.get_command(app)
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
