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


# ----------------------------------------------------------------------------- our layers beside the dataset

#: The name of the layers' record (writers.precomputed.layers.REGISTRY, read here as a plain file).
LAYERS_RECORD = "mesh-export.json"
_COMPARTMENT_SHADER = """#uicontrol bool by_compartment checkbox(default=true)
void main() {
  if (!by_compartment) { emitDefault(); return; }
  float c = compartment;
  vec3 colour = c == 1.0 ? vec3(1.0, 0.85, 0.1) : c == 2.0 ? vec3(0.2, 0.6, 1.0)
              : c == 4.0 ? vec3(1.0, 0.3, 0.9) : vec3(0.2, 0.9, 0.3);
  emitRGB(colour);
}
"""
_SYNAPSE_SHADER = """void main() {
  setColor(prop_direction() == 0u ? vec3(1.0, 0.2, 0.2) : prop_direction() == 1u ? vec3(0.2, 0.5, 1.0) : vec3(0.8));
  setPointMarkerSize(6.0);
}
"""


def read_layers_record(directory) -> dict[str, Any]:
    """The record of a directory of layers mesh-export wrote (its ids and which layers each has)."""
    from pathlib import Path

    path = Path(directory) / LAYERS_RECORD
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidArgumentError(f"{directory} holds no layers written by mesh-export ({LAYERS_RECORD} "
                                   "missing): write them with --format precomputed --out DIR") from None
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError(f"{path} is not readable: {exc}") from None
    if not record.get("cells"):
        raise InvalidArgumentError(f"{directory} holds no cells")
    return record


def layers_state(record: dict[str, Any], base_url: str, *, dataset: dict[str, Any] | None = None,
                 root_ids: Sequence[int | str] | None = None) -> dict[str, Any]:
    """A viewer state showing our layers (served at ``base_url``) and, when given, the dataset's
    segmentation (a :func:`neuroglancer_state` layer) with the same ids selected."""
    cells = record["cells"]
    ids = [str(r) for r in root_ids] if root_ids else sorted(cells, key=int)
    unknown = [i for i in ids if i not in cells]
    if unknown:
        raise InvalidArgumentError(f"id {unknown[0]} is not in these layers (they hold {', '.join(sorted(cells))})")
    base = "precomputed://" + base_url.rstrip("/")
    has = {name for i in ids for name in cells[i].get("layers", [])}
    layers: list[dict[str, Any]] = list(dataset["layers"]) if dataset else []
    dataset_layer = next((layer["name"] for layer in layers if layer.get("type") == "segmentation"), None)
    layers.append({"type": "segmentation", "name": "cells",
                   "source": f"{base}/mesh", "segments": ids,
                   "segmentColors": {i: "#ff8000" for i in ids}})
    if "skeleton" in has:
        layers.append({"type": "segmentation", "name": "skeletons",
                       "source": f"{base}/skeleton",
                       "segments": [i for i in ids if "skeleton" in cells[i]["layers"]],
                       "skeletonRendering": {"mode2d": "lines_and_points", "mode3d": "lines", "shader": _COMPARTMENT_SHADER,
                                             "lineWidth3d": 3}})
    if "synapses" in has:
        linked = {"cell": "cells"} | ({"partner": dataset_layer} if dataset_layer else {})
        layers.append({"type": "annotation", "name": "synapses", "source": f"{base}/synapses",
                       "linkedSegmentationLayer": linked, "filterBySegmentation": ["cell"], "shader": _SYNAPSE_SHADER})
    boxes = [cells[i]["bbox"] for i in ids if cells[i].get("bbox")]
    state: dict[str, Any] = {"dimensions": {"x": [1e-9, "m"], "y": [1e-9, "m"], "z": [1e-9, "m"]},
                             "layers": layers, "layout": "3d",
                             "title": f"mesh-export: {', '.join(ids[:3])}{' ...' if len(ids) > 3 else ''}"}
    if boxes:
        lo = [min(b[0][k] for b in boxes) for k in range(3)]
        hi = [max(b[1][k] for b in boxes) for k in range(3)]
        state["position"] = [(a + b) / 2 for a, b in zip(lo, hi)]
        # The 3-D view's height in nm: the whole cell in sight.
        state["projectionScale"] = max(h - l for l, h in zip(lo, hi)) * 1.3
    return state


def layers_link(directory, base_url: str, *, root_ids: Sequence[int | str] | None = None,
                datastack: str | None = None, source: str | None = None, static: bool = False,
                server: str | None = None, token: str | None = None, viewer: str | None = None,
                timeout: float = 60.0, dataset: bool = True) -> tuple[dict[str, Any], str]:
    """``(state, URL)`` of a viewer showing the layers in ``directory`` (served at ``base_url``)
    beside the dataset's own segmentation (``dataset=False``: ours only)."""
    record = read_layers_record(directory)
    ids = [str(r) for r in root_ids] if root_ids else sorted(record["cells"], key=int)
    dataset_state = None
    if dataset:
        from mesh_export.retrieve.auth import resolve_token
        from mesh_export.retrieve.sources import resolve

        token_value = resolve_token(token, server).value if source is None and not static else None
        resolved = resolve(source=source, datastack=datastack, static=static, server=server,
                           token=token_value, timeout=timeout)
        dataset_state = neuroglancer_state(ids, resolved.url, layer_name=resolved.datastack or "segmentation")
    state = layers_state(record, base_url, dataset=dataset_state, root_ids=ids)
    return state, state_url(state, viewer)
