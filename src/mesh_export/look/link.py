"""Neuroglancer links: a URL whose fragment (``#!`` + URL-encoded JSON state) shows a segment.

The segmentation source comes from the same resolution as exports (``sources.resolve``):
a CAVE datastack's segmentation (graphene), its known static meshes (``--static``), or any
``--source``. Nothing is fetched besides the datastack's info.
"""

from __future__ import annotations

import json
from typing import Any, Sequence
from urllib.parse import quote, unquote, urlsplit

from mesh_export.errors import InvalidArgumentError

DEFAULT_VIEWER = "https://neuroglancer-demo.appspot.com/"
# Viewers that know the datastack's auth (graphene sources need a CAVE login in the viewer).
KNOWN_VIEWERS = {
    "minnie65_public": "https://spelunker.cave-explorer.org/",
}


def neuroglancer_state(root_ids: Sequence[int | str], segmentation_source: str, *,
                       layer_name: str = "segmentation", image_source: str | None = None,
                       title: str | None = None) -> dict[str, Any]:
    """A Neuroglancer viewer state: one segmentation layer with ``root_ids`` selected, 3D view."""
    from mesh_export.core.parsing import parse_root_id

    ids = [str(parse_root_id(r)) for r in root_ids]
    if not ids:
        raise InvalidArgumentError("no segment ids to show")
    layers: list[dict[str, Any]] = []
    if image_source:
        layers.append({"type": "image", "source": image_source, "name": "image"})
    layers.append({"type": "segmentation", "source": segmentation_source, "name": layer_name,
                   "segments": ids})
    state: dict[str, Any] = {"layers": layers, "selectedLayer": {"layer": layer_name, "visible": True},
                             "layout": "3d"}
    if title:
        state["title"] = title
    return state


def state_url(state: dict[str, Any], viewer: str | None = None) -> str:
    """``<viewer>#!<URL-encoded compact JSON>``."""
    viewer = viewer or DEFAULT_VIEWER
    if not viewer.startswith(("http://", "https://")):
        raise InvalidArgumentError(f"viewer must be an http(s) URL, not {viewer!r}")
    base = viewer.split("#", 1)[0]
    if not base.endswith("/") and not urlsplit(base).path:
        base += "/"
    text = json.dumps(state, separators=(",", ":"))
    return f"{base}#!{quote(text, safe='')}"


def decode_url(url: str) -> dict[str, Any]:
    """The state JSON of a ``...#!<encoded JSON>`` Neuroglancer URL."""
    if "#!" not in url:
        raise InvalidArgumentError("not a Neuroglancer state URL (no '#!' fragment)")
    return json.loads(unquote(url.split("#!", 1)[1]))


def neuroglancer_url(root_id: int | str, *, datastack: str | None = None, source: str | None = None,
                     static: bool = False, server: str | None = None, token: str | None = None,
                     viewer: str | None = None, timeout: float = 60.0) -> str:
    """The URL of a public Neuroglancer viewer showing ``root_id`` from the datastack's segmentation."""
    from mesh_export.retrieve.auth import resolve_token
    from mesh_export.retrieve.sources import DEFAULT_DATASTACK, resolve

    root_id = str(root_id).strip()
    token_value = None
    if source is None and not static:  # only the datastack's info needs CAVE (and a token)
        token_value = resolve_token(token, server).value
    resolved = resolve(source=source, datastack=datastack, static=static, server=server,
                       token=token_value, timeout=timeout)
    name = resolved.datastack or "segmentation"
    state = neuroglancer_state([root_id], resolved.url, layer_name=name, title=f"{name} {root_id}")
    if viewer is None and source is None:
        viewer = KNOWN_VIEWERS.get(resolved.datastack or datastack or DEFAULT_DATASTACK)
    return state_url(state, viewer)
