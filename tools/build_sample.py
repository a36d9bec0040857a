"""Write the bundled offline sample (``make sample``): one neuron at true scale, as a sharded
multi-LOD Draco layer like MICrONS' static meshes.

``python tools/build_sample.py OUTDIR``. The cell is grown by :mod:`sample_neuron` (beside this
file); the layer is written by the test fixtures' precomputed writer (``tests/support``), which
needs zmesh (LGPL, the test extra): neither ships in the runtime package.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Iterable

import numpy as np

_ROOT = Path(__file__).resolve().parents[1]
for _path in (_ROOT / "tests", Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from support.precomputed import LayerGeometry, _drop_folds, _write_json, write_multires_layer  # noqa: E402

SAMPLE_SEED = 0
#: The bundled neuron's root id (the README, the Makefile and the tests use it).
SAMPLE_ROOT_ID = 864691135010718168
#: Faces of the bundled neuron at lod 0.
SAMPLE_FACES = 400_000
#: Face ratio between successive lods: lod 3 keeps enough faces for every neurite to stay a tube.
SAMPLE_LOD_REDUCTION = 3
#: The generator's name as the bundled sample's provenance records it. It predates the move to
#: tools/ and is kept so that a rebuild stays byte for byte the bundled copy.
_TASK = "mesh_export.datasets.precomputed.build_sample"


# --------------------------------------------------------------------------
# bundled sample
# --------------------------------------------------------------------------


def build_sample(
    outdir: str | os.PathLike,
    *,
    seed: int = SAMPLE_SEED,
    num_lods: int = 4,
    faces: int = SAMPLE_FACES,
    pitch_um: float = 0.25,
) -> dict:
    """Write the offline sample: one neuron at true scale, as a sharded multi-LOD Draco layer.

    The cell comes from :mod:`sample_neuron` (soma ~12 um across, an apical
    dendrite of ~300 um with a tuft, basal dendrites of 150-300 um, an axon), meshed at
    ``pitch_um`` and simplified to ``faces`` faces for lod 0; each further lod has a quarter
    of the faces, as MICrONS' static meshes (lods 0-3, 16-bit vertices). Readable as
    ``CloudVolume("precomputed://file://<abs outdir>")`` with ``.mesh.get(root_id, lod=k)``. A
    ``provenance`` file (the precomputed convention) records how it was made and the root id.
    The same arguments write the same bytes. Returns a summary.
    """
    from sample_neuron import grow_neuron, neuron_surface
    from support.neurons import simplify_mesh

    morphology = grow_neuron(seed)
    surface = neuron_surface(morphology, pitch_um=pitch_um)
    mesh = _drop_folds(simplify_mesh(surface, faces, scale=pitch_um * 1000.0)) if faces < len(surface.faces) else surface
    meshes = {SAMPLE_ROOT_ID: mesh}
    geometry = LayerGeometry.covering(meshes, resolution=(8.0, 8.0, 40.0), chunk_size=(256, 256, 32))
    out = Path(outdir)
    face_counts = write_multires_layer(out, meshes, num_lods=num_lods, sharded=True, geometry=geometry,
                                       vertex_quantization_bits=16, lod_reduction=SAMPLE_LOD_REDUCTION)
    lengths = morphology.path_lengths / 1000.0
    provenance = {
        "description": (
            "mesh-export offline sample: one synthetic pyramidal neuron at true scale (soma ~12 um, "
            "apical dendrite ~300 um, basal dendrites 150-300 um, axon), marching cubes of the distance "
            "to a branching skeleton, simplified per lod, sharded multi-resolution Draco meshes."
        ),
        "owners": [],
        "sources": [],
        "processing": [{
            "method": {"task": _TASK, "seed": seed,
                       "num_lods": num_lods, "faces": faces, "pitch_um": pitch_um},
        }],
        "root_ids": [str(SAMPLE_ROOT_ID)],
        "units": "nm",
        "faces_per_lod": {str(k): v for k, v in face_counts.items()},
        "morphology": {"nodes": int(len(morphology.points)),
                       "soma_diameter_um": round(float(morphology.radii[0]) * 2 / 1000.0, 3),
                       "longest_path_um": {name: round(float(lengths[morphology.types == kind].max()), 1)
                                           for name, kind in (("axon", 2), ("basal", 3), ("apical", 4))},
                       "total_length_um": round(float(np.linalg.norm(
                           morphology.points[1:] - morphology.points[morphology.parents[1:]], axis=1).sum()) / 1000.0, 1)},
    }
    _write_json(out / "provenance", provenance)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"path": str(out), "root_ids": [SAMPLE_ROOT_ID], "faces_per_lod": face_counts, "bytes": size}


def _main(argv: Iterable[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python tools/build_sample.py",
        description="Write the bundled offline sample (sharded multi-LOD Draco precomputed layer).",
    )
    parser.add_argument("outdir", help="directory to write the layer into")
    parser.add_argument("--seed", type=int, default=SAMPLE_SEED)
    parser.add_argument("--lods", type=int, default=4)
    parser.add_argument("--faces", type=int, default=SAMPLE_FACES, help="faces at lod 0")
    args = parser.parse_args(list(argv) if argv is not None else None)
    summary = build_sample(args.outdir, seed=args.seed, num_lods=args.lods, faces=args.faces)
    print(json.dumps({k: v for k, v in summary.items() if k != "faces_per_lod"}, indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())
