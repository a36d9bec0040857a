"""mesh-export info | preview | link | compare: look at a root id or a file before exporting it.

A root id is fetched through the cache, as export fetches it (FETCH_OPTIONS say from where)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mesh_export.cli.options import (FETCH_OPTIONS, DatastackOpt, JsonOpt, LodOpt, OutOpt, OverwriteOpt, QuietOpt,
                                     ServerOpt, SizeOpt, SourceOpt, StaticOpt, TargetArg, TimeoutOpt, TokenOpt,
                                     UnitsInOpt, ViewsOpt, variant, with_option_groups)
from mesh_export.cli.output import emit_json

_OverwritePng = variant(OverwriteOpt, help="Replace an existing PNG.")
_FiguresJson = variant(JsonOpt, help="Print the figures as JSON.")
_PreviewOut = variant(OutOpt, help="PNG to write [default: <id or file stem>.png].")
# link fetches no mesh, it names the segmentation to show: these in its own words
_LinkDatastack = variant(DatastackOpt, help="CAVE datastack [default: minnie65_public].", panel=None)
_LinkSource = variant(SourceOpt, help="Segmentation source URL instead of the datastack's.", panel=None)
_LinkStatic = variant(StaticOpt, help="The datastack's static meshes (no CAVE request, no token).", panel=None)


@with_option_groups
def info_command(
    target: TargetArg,
    lod: LodOpt = None,
    as_json: _FiguresJson = False,
    no_lods: Annotated[bool, typer.Option("--no-lods", help="Do not fetch the other lods to count their faces.")] = False,
    units_in: UnitsInOpt = None,
    fetch: dict = FETCH_OPTIONS,
) -> None:
    """Figures of a mesh or skeleton: counts, bbox, area, volume, watertight, pieces, lods, source, cache."""
    from mesh_export.api import format_info, info

    result = info(target, lod=lod, list_lods=not no_lods, units=units_in, **fetch)
    if as_json:
        emit_json(result)
    else:
        typer.echo(format_info(result))


@with_option_groups
def preview_command(
    target: TargetArg,
    out: _PreviewOut = None,
    views: ViewsOpt = "xy",
    size: SizeOpt = "1200x800",
    lod: LodOpt = None,
    caption: Annotated[Optional[str], typer.Option("--caption", help="Caption text [default: id, lod, faces, datastack].")] = None,
    overwrite: _OverwritePng = False,
    units_in: UnitsInOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fetch: dict = FETCH_OPTIONS,
) -> None:
    """Render a shaded PNG offscreen (no display, no GPU), with a scale bar in um and a caption."""
    from mesh_export.api import preview

    result = preview(target, out, views=views, size=size, lod=lod, caption=caption, overwrite=overwrite,
                     units=units_in, **fetch)
    if as_json:
        emit_json(result.summary())
    elif not quiet:
        picture = result.picture
        scale = f"{picture.um_per_pixel:.4g} um/pixel" if picture.um_per_pixel else "units unknown"
        typer.echo(f"wrote {picture.path} ({picture.size[0]}x{picture.size[1]}, {scale})")


def link_command(
    root_id: Annotated[Optional[str], typer.Argument(help="Root id to show (with --layers: the ids of those layers by default).", show_default=False)] = None,
    datastack: _LinkDatastack = None,
    source: _LinkSource = None,
    static: _LinkStatic = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    viewer: Annotated[Optional[str], typer.Option("--viewer", help="Neuroglancer viewer URL [default: the datastack's public viewer, else neuroglancer-demo.appspot.com].")] = None,
    timeout: TimeoutOpt = 60.0,
    layers: Annotated[Optional[Path], typer.Option("--layers", help="A directory of layers written with --format precomputed: show them beside the dataset's.")] = None,
    serve: Annotated[bool, typer.Option("--serve", help="With --layers: serve the directory over HTTP on localhost (CORS, byte ranges) until Ctrl-C.")] = False,
    port: Annotated[int, typer.Option("--port", help="--serve: the port (0: any free one).")] = 8000,
    layers_url: Annotated[Optional[str], typer.Option("--layers-url", help="Where the viewer reads --layers from [default: http://127.0.0.1:PORT/<DIR's name>, where --serve serves it].")] = None,
    no_dataset: Annotated[bool, typer.Option("--no-dataset", help="With --layers: our layers only (no CAVE request).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --layers: print the state as JSON, then the URL.")] = False,
) -> None:
    """Print a Neuroglancer URL showing the segment (viewer state JSON in the URL fragment);
    with --layers, a state showing our layers beside the dataset's (and --serve serves them)."""
    from mesh_export.errors import InvalidArgumentError

    if layers is None:
        if serve or layers_url or no_dataset:
            raise InvalidArgumentError("--serve, --layers-url and --no-dataset go with --layers DIR")
        if root_id is None:
            raise InvalidArgumentError("give a root id (or --layers DIR)")
        from mesh_export.api import neuroglancer_url

        typer.echo(neuroglancer_url(root_id, datastack=datastack, source=source, static=static, server=server,
                                    token=token, viewer=viewer, timeout=timeout))
        return
    _link_layers(root_id, layers, serve=serve, port=port, layers_url=layers_url, dataset=not no_dataset,
                 as_json=as_json, datastack=datastack, source=source, static=static, server=server, token=token,
                 viewer=viewer, timeout=timeout)


def _link_layers(root_id, layers: Path, *, serve: bool, port: int, layers_url, dataset: bool, as_json: bool,
                 **where) -> None:
    import json
    import sys

    from mesh_export.api import layers_link, serve_layers

    if not layers.is_dir():
        from mesh_export.errors import InvalidArgumentError

        raise InvalidArgumentError(f"--layers: no such directory: {layers}")
    server = serve_layers(layers, port=port) if serve else None
    try:
        if server is not None and layers_url is None:
            layers_url = server.base_url
        state, url = layers_link(layers, layers_url or f"http://127.0.0.1:{port}/{layers.absolute().name}",
                                 root_ids=[root_id] if root_id else None, dataset=dataset, **where)
        if as_json:
            typer.echo(json.dumps(state, indent=1))
        typer.echo(url)
        if server is None:
            return
        typer.echo(f"serving {layers} at {layers_url} (Ctrl-C to stop)", err=True)
        sys.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    finally:
        if server is not None:
            server.server_close()


@with_option_groups
def compare_command(
    a: Annotated[str, typer.Argument(help="First mesh: a root id or a file.")],
    b: Annotated[str, typer.Argument(help="Second mesh: a root id or a file.")],
    out: OutOpt = Path("compare.png"),
    lod_a: Annotated[Optional[int], typer.Option("--lod-a", help="Level of detail of A (root ids).")] = None,
    lod_b: Annotated[Optional[int], typer.Option("--lod-b", help="Level of detail of B (root ids).")] = None,
    views: ViewsOpt = "xy",
    size: SizeOpt = "1200x800",
    samples: Annotated[int, typer.Option("--samples", help="Surface samples per mesh for the Hausdorff distance.")] = 200_000,
    overwrite: _OverwritePng = False,
    units_in: UnitsInOpt = None,
    as_json: JsonOpt = False,
    fetch: dict = FETCH_OPTIONS,
) -> None:
    """Two meshes side by side in one PNG, with their counts and the Hausdorff distance."""
    from mesh_export.api import compare

    result = compare(a, b, out, lod_a=lod_a, lod_b=lod_b, views=views, size=size, samples=samples,
                     overwrite=overwrite, units=units_in, **fetch)
    if as_json:
        emit_json(result.summary)
    else:
        faces = [result.summary[side]["faces"] for side in "ab"]
        typer.echo(f"A {faces[0]:,} faces   B {faces[1]:,} faces   {result.caption}")
        typer.echo(f"wrote {result.summary['output']}")
