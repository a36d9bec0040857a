"""The typer app: every command registered in the order ``--help`` lists them, and ``main``, the
entry point that maps every error to one line and an exit code."""

from __future__ import annotations

import sys
from typing import Annotated, List, Optional

import typer

from mesh_export.cli.auth import auth_app
from mesh_export.cli.cache import cache_app
from mesh_export.cli.check import check_command
from mesh_export.cli.convert import convert_command
from mesh_export.cli.export import export_command
from mesh_export.cli.formats import datastacks_command, formats_command
from mesh_export.cli.look import compare_command, info_command, link_command, preview_command
from mesh_export.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, MeshExportError

app = typer.Typer(
    name="mesh-export",
    help="From a connectomics root id, or any mesh file, to the file you need.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks and debug detail on errors.")] = False,
) -> None:
    """mesh-export: fast, verified mesh and morphology export."""


app.command("formats")(formats_command)
app.command("datastacks")(datastacks_command)
app.command("convert")(convert_command)
app.command("export")(export_command)
app.command("check")(check_command)
app.add_typer(cache_app, name="cache")
app.add_typer(auth_app, name="auth")
app.command("info")(info_command)
app.command("preview")(preview_command)
app.command("link")(link_command)
app.command("compare")(compare_command)

_ARGV_TOKENS: list[str] = []  # tokens given on the command line, scrubbed from error lines


def _one_line(exc: BaseException) -> str:
    from mesh_export.api import redact, resolve_token

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
