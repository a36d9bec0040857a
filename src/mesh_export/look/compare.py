"""Two meshes side by side (``mesh-export compare``): root ids or files, loaded as info and preview
load them, in one PNG at one scale, with their counts and the Hausdorff distance between them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from mesh_export.core.atomic import check_target
from mesh_export.core.parsing import parse_picture_size
from mesh_export.errors import InvalidArgumentError
from mesh_export.look.info import hausdorff, load_target
from mesh_export.look.preview import parse_views, render_compare, target_caption
from mesh_export.model import SKELETON, kind_of


@dataclass
class Comparison:
    """What ``compare`` found: the figures ``--json`` prints, and the line drawn under the picture."""

    summary: dict[str, Any]  # output, units, a and b (target, vertices, faces, lod), hausdorff, a_to_b, b_to_a
    caption: str  # the distances, as drawn under the picture


def compare(a: str | os.PathLike, b: str | os.PathLike, out: str | os.PathLike = "compare.png", *,
            lod_a: int | None = None, lod_b: int | None = None, views: str = "xy", size: str = "1200x800",
            samples: int = 200_000, overwrite: bool = False, units: str | None = None,
            **source_options: Any) -> Comparison:
    """Render ``a`` and ``b`` side by side to ``out``; ``units`` declares files that do not say.

    Arguments are checked, and ``out`` with them, before anything is fetched."""
    parse_views(views), parse_picture_size(size)
    if samples < 0:
        raise InvalidArgumentError(f"--samples must be 0 or more, got {samples}")
    check_target(out, overwrite)
    loaded = [load_target(t, lod=lod, units=units, **source_options) for t, lod in ((a, lod_a), (b, lod_b))]
    if any(kind_of(obj) == SKELETON for obj, _ in loaded):
        raise InvalidArgumentError("compare takes two surface meshes, not skeletons")
    (mesh_a, meta_a), (mesh_b, meta_b) = loaded
    mesh_units = [mesh_a.metadata.get("units"), mesh_b.metadata.get("units")]
    if mesh_units[0] != mesh_units[1]:
        raise InvalidArgumentError(f"cannot compare meshes in different units ({mesh_units[0]} vs {mesh_units[1]}); "
                                   "convert one, or declare them with --units-in")
    distance = hausdorff(mesh_a, mesh_b, samples=samples)
    unit = mesh_units[0] or "units"
    labels = [f"{tag}: {target_caption(mesh, meta, target)}"
              for tag, mesh, meta, target in (("A", mesh_a, meta_a, a), ("B", mesh_b, meta_b, b))]
    caption = (f"Hausdorff {distance['hausdorff']:,.4g} {unit}  "
               f"(A->B {distance['a_to_b']:,.4g}, B->A {distance['b_to_a']:,.4g})")
    picture = render_compare([mesh_a, mesh_b], out, labels=labels, views=views, size=size, caption=caption,
                             overwrite=overwrite)
    summary = {"output": str(picture.path), "units": mesh_units[0],
               "a": {"target": a, "vertices": len(mesh_a.vertices), "faces": len(mesh_a.faces), "lod": meta_a.get("lod")},
               "b": {"target": b, "vertices": len(mesh_b.vertices), "faces": len(mesh_b.faces), "lod": meta_b.get("lod")},
               **distance}
    return Comparison(summary, caption)
