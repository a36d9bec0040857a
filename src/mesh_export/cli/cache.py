"""mesh-export cache info | clear | prune: the verified mesh cache."""

from __future__ import annotations

from typing import Annotated

import typer

from mesh_export.cli.options import BareJsonOpt, CacheDirOpt, variant
from mesh_export.cli.output import emit_json

cache_app = typer.Typer(help="Inspect and manage the mesh cache.", no_args_is_help=True)
_CacheDir = variant(CacheDirOpt, panel=None)


@cache_app.command("info")
def cache_info(cache_dir: _CacheDir = None, as_json: BareJsonOpt = False) -> None:
    """Where the cache is, how many meshes it holds and their size."""
    from mesh_export.api import cache_info as read_info

    info = read_info(cache_dir)
    if as_json:
        emit_json(info)
    else:
        typer.echo(f"{info['directory']}: {info['entries']} meshes, {info['bytes']:,} bytes")


@cache_app.command("clear")
def cache_clear(cache_dir: _CacheDir = None) -> None:
    """Delete every cached mesh."""
    from mesh_export.api import cache_clear as clear

    typer.echo(f"removed {clear(cache_dir)} cached meshes")


@cache_app.command("prune")
def cache_prune(
    max_size: Annotated[str, typer.Option("--max-size", help="Keep at most this much, e.g. 2GB; least recently used go first.")],
    cache_dir: _CacheDir = None,
) -> None:
    """Drop least recently used meshes until the cache fits in --max-size."""
    from mesh_export.api import cache_prune as prune

    result = prune(max_size, cache_dir)
    typer.echo(f"removed {result['removed']}, kept {result['entries']} meshes ({result['bytes']:,} bytes)")
