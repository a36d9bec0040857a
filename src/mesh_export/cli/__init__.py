"""Command line: a thin typer layer over mesh_export.api. No logic lives only here.

root.py holds the typer app and ``main`` (the ``mesh-export`` console script); each command
family has its own module (export, convert, check, look, cache, auth, formats), and every
option that more than one command takes is declared once, in options.py. Heavy libraries are
imported inside the commands, so ``mesh-export --help`` starts fast. The commands import only
mesh_export.api, errors, core, model and this package (tests/test_layers.py).
"""

from mesh_export.cli.root import EXIT_INTERNAL, EXIT_INTERRUPTED, app, main

__all__ = ["EXIT_INTERNAL", "EXIT_INTERRUPTED", "app", "main"]
