"""A directory of Neuroglancer precomputed layers that cells are added to (``--format precomputed``)::

    DIR/mesh/                multi-resolution sharded Draco (or legacy with --legacy); info
    DIR/skeleton/            one skeleton file per id; info (radius, compartment)
    DIR/synapses/            point annotations; info, by_id/, rel_cell/, rel_partner/, spatial0/
    DIR/segment_properties/  info: every id's label and description
    DIR/mesh-export.json     which ids are here, how each was made (what tells our layers from others')

Adding cells takes a lock on DIR's parent (batch workers add concurrently), checks everything
first (a layer mesh-export did not write, an id already there, the other mesh kind), then
writes each file under a temporary name and renames it into place; ``mesh-export.json`` last.
A new DIR is built beside and renamed into place whole. Other ids' files are not rewritten,
except the one mesh shard an added id hashes to (rebuilt from the payloads it held) and the
indices that list every synapse (segment properties, the spatial index, a partner's list).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import stat
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from mesh_export.errors import InvalidArgumentError, OutputError

REGISTRY = "mesh-export.json"
LAYER_NAMES = ("mesh", "skeleton", "synapses", "segment_properties")
_TYPES = {"mesh": ("neuroglancer_multilod_draco", "neuroglancer_legacy_mesh"), "skeleton": ("neuroglancer_skeletons",),
          "synapses": ("neuroglancer_annotations_v1",), "segment_properties": ("neuroglancer_segment_properties",)}


@dataclass(frozen=True)
class LayerOptions:
    """How the mesh layer is written: ``lods`` levels of detail (multi-resolution), or one
    ``legacy`` unsharded fragment per id."""

    lods: int = 4
    legacy: bool = False

    def checked(self) -> "LayerOptions":
        if not 1 <= int(self.lods) <= 8:
            raise InvalidArgumentError(f"--lods takes 1 to 8 levels of detail, not {self.lods}")
        if self.legacy and int(self.lods) != 1 and self.lods != LayerOptions.lods:
            raise InvalidArgumentError("--legacy meshes have one level of detail: drop --lods")
        return LayerOptions(int(self.lods), bool(self.legacy))

    @property
    def mesh_kind(self) -> str:
        return "legacy" if self.legacy else "multires"


@dataclass
class Cell:
    """One cell to add: its surface (nm), its skeleton and synapse table when a morphology was
    made, and what the segment properties say about it."""

    root_id: int
    vertices: np.ndarray
    faces: np.ndarray
    skeleton: Any = None
    label: str = ""
    description: str = ""
    record: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- files


def _put(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.part"
    try:
        with open(tmp, "xb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _put_json(path: Path, payload) -> None:
    data = (json.dumps(payload, indent=1) + "\n").encode()
    try:
        if path.read_bytes() == data:  # an info as it was stays untouched
            return
    except FileNotFoundError:
        pass
    _put(path, data)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise OutputError(f"{path} is not a readable JSON file ({exc}); not adding to it") from None


@contextmanager
def _locked(parent: Path) -> Iterator[None]:
    """Serialise adders of layers under ``parent`` (threads and processes): a flock on the
    directory itself, so no lock file is left behind."""
    fd = os.open(parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _writable(path: Path) -> bool:
    mode = os.stat(path).st_mode
    return bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)) and os.access(path, os.W_OK)


# ----------------------------------------------------------------------------- checks


def check_directory(directory: str | os.PathLike, root_ids, options: LayerOptions, overwrite: bool) -> Path:
    """Refuse, before any work, what :func:`add_cells` would refuse: a target that cannot be
    written, layers mesh-export did not write, the other mesh kind, ids already there."""
    directory = Path(directory)
    parent = directory.parent
    if not parent.is_dir():
        raise OutputError(f"output directory does not exist: {parent}")
    if directory.exists():
        if not directory.is_dir():
            raise OutputError(f"output path exists and is not a directory: {directory}")
        if not _writable(directory):
            raise OutputError(f"output directory is not writable: {directory}")
        _existing(directory, [int(r) for r in root_ids], options, overwrite)
    elif not _writable(parent):
        raise OutputError(f"output directory is not writable: {parent}")
    return directory


def _existing(directory: Path, root_ids: list[int], options: LayerOptions, overwrite: bool) -> dict | None:
    """The registry of ``directory``'s layers after the checks (None: no layers of ours)."""
    registry = _read_json(directory / REGISTRY)
    found = {name: _read_json(directory / name / "info") for name in LAYER_NAMES
             if (directory / name / "info").exists()}
    if (directory / "info").exists():
        found["."] = _read_json(directory / "info")
    if registry is None or registry.get("format") != "mesh-export precomputed layers":
        if found and not overwrite:
            names = ", ".join(sorted(name if name != "." else "info" for name in found))
            raise OutputError(f"{directory} holds Neuroglancer data mesh-export did not write ({names}); "
                              "pass --overwrite to replace it")
        return None
    for name, info in found.items():
        kinds = _TYPES.get(name, ())
        if not isinstance(info, dict) or info.get("@type") not in kinds:
            if not overwrite:
                kind = info.get("@type") if isinstance(info, dict) else "not a layer"
                raise OutputError(f"{directory / name} is a layer of another kind ({kind}); "
                                  "pass --overwrite to replace it")
    if registry.get("mesh") not in (None, options.mesh_kind):
        raise InvalidArgumentError(f"{directory / 'mesh'} holds {registry['mesh']} meshes; cannot add "
                                   f"{options.mesh_kind} ones (another --out, or "
                                   f"{'--legacy' if registry['mesh'] == 'legacy' else 'no --legacy'})")
    if not overwrite:
        there = [r for r in root_ids if str(r) in registry.get("cells", {})]
        if there:
            raise OutputError(f"id {there[0]} is already in {directory}; pass --overwrite to replace it")
    return registry


# ----------------------------------------------------------------------------- adding


def add_cells(directory: str | os.PathLike, cells: list[Cell], options: LayerOptions | None = None,
              overwrite: bool = False) -> dict:
    """Add ``cells`` to the layers under ``directory`` (made if missing); returns the registry."""
    options = (options or LayerOptions()).checked()
    directory = Path(directory)
    if not cells:
        raise InvalidArgumentError("no cells to add")
    try:
        check_directory(directory, [c.root_id for c in cells], options, overwrite)
        with _locked(directory.parent):
            if directory.exists():
                # Again under the lock: another worker may have added since the first check.
                registry = _existing(directory, [c.root_id for c in cells], options, overwrite)
                if registry is None:  # --overwrite over another's layers: ours replace them
                    for name in LAYER_NAMES:
                        shutil.rmtree(directory / name, ignore_errors=True)
                    (directory / "info").unlink(missing_ok=True)
                return _add(directory, registry, cells, options)
            staging = directory.parent / f".{directory.name}.{secrets.token_hex(8)}.part"
            staging.mkdir()
            try:
                registry = _add(staging, None, cells, options)
                os.rename(staging, directory)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            return registry
    except OSError as exc:
        raise OutputError(f"cannot write {directory}: {exc.strerror or exc}") from None


def _add(directory: Path, registry: dict | None, cells: list[Cell], options: LayerOptions) -> dict:
    from mesh_export._version import __version__

    registry = registry or {"format": "mesh-export precomputed layers", "mesh": options.mesh_kind, "cells": {}}
    registry["mesh"] = options.mesh_kind
    registry["writer"] = f"mesh-export {__version__}"
    known = registry["cells"]
    _add_meshes(directory / "mesh", cells, options, known)
    skeletons = [c for c in cells if c.skeleton is not None]
    if skeletons:
        from mesh_export.writers.precomputed.skeleton import INFO, skeleton_bytes

        for cell in skeletons:
            _put(directory / "skeleton" / str(cell.root_id), skeleton_bytes(cell.skeleton))
        _put_json(directory / "skeleton" / "info", INFO)
    for cell in cells:
        if str(cell.root_id) in known and "skeleton" in known[str(cell.root_id)]["layers"] and cell.skeleton is None:
            (directory / "skeleton" / str(cell.root_id)).unlink(missing_ok=True)
    synapse_counts = _add_synapses(directory / "synapses", cells, known)
    for cell in cells:
        layers = ["mesh"] + (["skeleton"] if cell.skeleton is not None else [])
        if synapse_counts.get(cell.root_id):
            layers.append("synapses")
        known[str(cell.root_id)] = {"label": cell.label, "description": cell.description, "layers": layers,
                                    "synapses": synapse_counts.get(cell.root_id, 0), **cell.record}
    ids = sorted(known, key=int)
    _put_json(directory / "segment_properties" / "info", {
        "@type": "neuroglancer_segment_properties",
        "inline": {"ids": ids, "properties": [
            {"id": "label", "type": "label", "values": [known[i]["label"] for i in ids]},
            {"id": "description", "type": "description", "values": [known[i]["description"] for i in ids]}]}})
    _put_json(directory / REGISTRY, registry)
    return registry


def _add_meshes(mesh_dir: Path, cells: list[Cell], options: LayerOptions, known: dict) -> None:
    import mesh_export.writers.precomputed.mesh as encode

    if options.legacy:
        for cell in cells:
            name = f"{cell.root_id}:0:0"
            _put(mesh_dir / name, encode.legacy_fragment(cell.vertices, cell.faces))
            _put_json(mesh_dir / f"{cell.root_id}:0", {"fragments": [name]})
            cell.record["faces_per_lod"] = [int(len(cell.faces))]
        _put_json(mesh_dir / "info", encode.LEGACY_INFO)
        return
    from mesh_export.writers.precomputed.sharding import SHARDING, read_shard, shard_name, write_shard

    by_shard: dict[str, dict[int, tuple[bytes, int]]] = {}
    for cell in cells:
        data, manifest, faces_per_lod = encode.multires_payload(cell.vertices, cell.faces, options.lods)
        cell.record["faces_per_lod"] = faces_per_lod
        by_shard.setdefault(shard_name(SHARDING, cell.root_id), {})[int(cell.root_id)] = (data + manifest, len(manifest))
    for filename, entries in by_shard.items():
        path = mesh_dir / filename
        held = read_shard(path.read_bytes(), SHARDING, encode.manifest_data_length) if path.exists() else {}
        held.update(entries)
        write_shard(mesh_dir, SHARDING, held, _put)
    _put_json(mesh_dir / "info", encode.multires_info(SHARDING))


def _add_synapses(layer: Path, cells: list[Cell], known: dict) -> dict[int, int]:
    """Write the cells' synapses; returns how many each has. Re-added cells' old entries go."""
    import mesh_export.writers.precomputed.synapse_annotations as ann

    counts: dict[int, int] = {}
    changed = False
    for cell in cells:
        previous = layer / "rel_cell" / str(cell.root_id)
        if previous.exists():  # --overwrite: the cell's old synapses leave every index
            old_ids, _ = ann.decode_many(previous.read_bytes())
            _drop_from_partners(layer, old_ids)
            for annotation_id in old_ids:
                (layer / "by_id" / str(int(annotation_id))).unlink(missing_ok=True)
            previous.unlink()
            changed = True
        table = getattr(cell.skeleton, "synapses", None) if cell.skeleton is not None else None
        if table is None or len(table) == 0:
            if (layer / "info").exists() or changed:  # a viewer asks for every shown cell's list: an empty one
                _put(previous, ann.encode_many(np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=ann.RECORD)))
            continue
        ids, records, partners = ann.cell_annotations(table, cell.root_id)
        for annotation_id, record, partner in zip(ids, records, partners):
            related = [[int(cell.root_id)], [int(partner)] if partner else []]
            _put(layer / "by_id" / str(int(annotation_id)), ann.encode_one(record, related))
        _put(previous, ann.encode_many(ids, records))
        for partner in np.unique(partners[partners != 0]):
            path = layer / "rel_partner" / str(int(partner))
            mine = partners == partner
            if path.exists():
                old_ids, old_records = ann.decode_many(path.read_bytes())
                keep = ~np.isin(old_ids, ids)
                _put(path, ann.encode_many(np.concatenate([old_ids[keep], ids[mine]]),
                                           np.concatenate([old_records[keep], records[mine]])))
            else:
                _put(path, ann.encode_many(ids[mine], records[mine]))
        counts[cell.root_id] = len(ids)
        changed = True
    if changed:
        _rebuild_spatial(layer, ann)
    return counts


def _drop_from_partners(layer: Path, ids: np.ndarray) -> None:
    import mesh_export.writers.precomputed.synapse_annotations as ann

    for path in (layer / "rel_partner").glob("[0-9]*"):
        old_ids, old_records = ann.decode_many(path.read_bytes())
        keep = ~np.isin(old_ids, ids)
        if keep.all():
            continue
        if keep.any():
            _put(path, ann.encode_many(old_ids[keep], old_records[keep]))
        else:
            path.unlink()


def _rebuild_spatial(layer: Path, ann) -> None:
    """The one spatial cell and the info's bounds, from every cell's entries."""
    parts = [ann.decode_many(p.read_bytes()) for p in sorted((layer / "rel_cell").glob("[0-9]*"))]
    ids = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, dtype="<u8")
    records = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, dtype=ann.RECORD)
    if len(records):
        lower = np.floor(records["position"].min(axis=0)) - 1
        upper = np.ceil(records["position"].max(axis=0)) + 1
    else:
        lower, upper = np.zeros(3), np.ones(3)
    _put(layer / "spatial0" / "0_0_0", ann.encode_many(ids, records))
    _put_json(layer / "info", ann.info(lower, upper, len(ids)))
