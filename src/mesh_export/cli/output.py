"""What every command prints the same way."""

from __future__ import annotations

import json

import typer


def emit_json(payload) -> None:
    """One JSON document on one line of stdout (paths and other objects as strings)."""
    typer.echo(json.dumps(payload, indent=None, default=str))
