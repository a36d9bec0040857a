"""mesh-export formats, mesh-export datastacks: what can be written, and the datastacks known."""

from __future__ import annotations

import typer

from mesh_export.cli.options import JsonOpt, variant
from mesh_export.cli.output import emit_json

_ListJson = variant(JsonOpt, help="Print the list as JSON.")
_RegistryJson = variant(JsonOpt, help="Print the registry as JSON.")


def formats_command(as_json: _ListJson = False) -> None:
    """List every output format: name, extensions, what it accepts, modes and options."""
    from mesh_export.api import formats

    rows = formats()
    if as_json:
        emit_json(rows)
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


def datastacks_command(as_json: _RegistryJson = False) -> None:
    """List the known datastacks: CAVE server, static mesh releases (by version), description.

    Add or override entries in datastacks.toml in the config directory (the last line says where)."""
    from mesh_export.api import datastacks, datastacks_config_path

    rows = datastacks()
    if as_json:
        emit_json(rows)
        return
    table = [("datastack", "server", "static releases", "description")]
    for row in rows:
        versions = ", ".join(f"{r['version']}{'*' if r['version'] == row['default_version'] else ''}"
                             for r in row["static"]) or "-"
        table.append((row["name"], row["server"], versions, row["description"]))
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    for r in table:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1])
    typer.echo(f"(* the default for --static; user entries: {datastacks_config_path()})")
