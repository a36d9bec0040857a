"""Export sidecars of the bundled sample as they must stay: a few exports through each kind of
writer path (cached arrays, a trimesh with steps, a unit conversion for 3MF, a skeleton), their
sidecars made comparable across runs and checkouts. (A volume mesh of the sample takes TetGen
~15 s: tests/test_volume.py covers that path.)

``sidecars.json`` beside this file holds what the code before the provenance move wrote for
these cases; ``python -m tests.support.sidecars`` (from the repository root) rewrites it.
The output's SHA-256 is in each sidecar, so matching sidecars also means byte-identical files
(but for 3MF, a zip archive that records when it was written).
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT_ID = 864691135010718168
GOLDEN = Path(__file__).with_name("sidecars.json")
# Different on every run or in every checkout and environment.
_VOLATILE = "<volatile>"


def cases() -> dict[str, dict]:
    from mesh_export.process.steps import StepOptions

    return {
        "stl": {"format": "stl"},
        "ply-ascii-um": {"format": "ply", "ascii": True, "units": "um"},
        "3mf": {"format": "3mf"},
        "obj-largest-check": {"format": "obj", "steps": StepOptions(largest_component=True), "check": True},
        "swc": {"format": "swc"},
    }


def normalized(sidecar: dict) -> dict:
    """``sidecar`` with its timestamps, library versions and the sample's path masked (key order kept)."""
    text = json.dumps(sidecar).replace(_sample_path(), "<sample>")
    record = json.loads(text)
    record["created"] = _VOLATILE
    record["libraries"] = _VOLATILE
    record["fetch"]["fetched"] = _VOLATILE
    if record["output"]["format"] == "3mf":
        record["output"]["bytes"] = record["output"]["sha256"] = _VOLATILE
    return record


def export_case(name: str, out_dir: Path) -> dict:
    """The normalized sidecar of exporting the sample (lod 3) as case ``name``."""
    from mesh_export.jobs.export import export

    result = export(ROOT_ID, source="sample", lod=3, out_dir=out_dir, use_cache=False, **cases()[name])
    record = normalized(json.loads(result.sidecar.read_text()))
    if record["output"]["sha256"] != _VOLATILE:
        # Text formats name their source (the sample's path, so the checkout's): the size and hash
        # are of the file with that path masked, as the sidecar's own fields are.
        import hashlib

        masked = masked_sample_path(result.output.read_bytes())
        record["output"]["bytes"], record["output"]["sha256"] = len(masked), hashlib.sha256(masked).hexdigest()
    return record


def masked_sample_path(data: bytes) -> bytes:
    return data.replace(_sample_path().encode(), b"<sample>")


def _sample_path() -> str:
    import mesh_export

    return str(Path(mesh_export.__file__).parent / "data" / "sample")


def api_writes(out_dir: Path) -> dict[str, str]:
    """SHA-256 of files the public API writes from the sample's lod-3 arrays: a CachedSurface to
    binary and text formats, convert() of the STL written to PLY, and the arrays as a trimesh to
    SWC (skeletonized by write()) and then that skeleton, read back, to HOC."""
    import hashlib

    import mesh_export
    from mesh_export.model import CachedSurface
    from mesh_export.retrieve.cached import fetch_cached

    vertices, faces, meta, _ = fetch_cached(ROOT_ID, source="sample", lod=3, use_cache=False)
    surface = CachedSurface(vertices, faces, {"units": "nm", "root_id": str(ROOT_ID)})
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {name: mesh_export.write(surface, out_dir / name) for name in ("cached.stl", "cached.ply", "cached.obj")}
    written["converted.ply"] = mesh_export.convert(written["cached.stl"], out_dir / "converted.ply", units_in="nm")
    from mesh_export.writers.readers import read_swc, to_trimesh

    written["skeleton.swc"] = mesh_export.write(to_trimesh(vertices, faces, surface.metadata), out_dir / "skeleton.swc")
    skeleton = read_swc(written["skeleton.swc"])
    skeleton.metadata = {"root_id": str(ROOT_ID)}
    written["skeleton.hoc"] = mesh_export.write(skeleton, out_dir / "skeleton.hoc")
    return {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in written.items()}


def main() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        golden = {name: export_case(name, Path(tmp) / name) for name in cases()}
        golden["api"] = api_writes(Path(tmp) / "api")
    GOLDEN.write_text(json.dumps(golden, indent=1) + "\n")


if __name__ == "__main__":
    main()
