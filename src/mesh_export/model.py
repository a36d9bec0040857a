"""The types every layer shares: what a writer accepts, the mesh as fetched or cached, and the
morphology.

Three kinds of data pass between layers, and :func:`kind_of` is the one place that tells them
apart (no layer probes attributes or module names):

* a surface (``SURFACE``): anything that is a :class:`Surface`, the contract every surface
  writer accepts. trimesh.Trimesh is one, and so is :class:`CachedSurface` (the arrays as
  fetched or read, for the binary native writers);
* a skeleton (``SKELETON``): a :class:`Skeleton`, with the unit rules every morphology writer
  applies (:func:`as_skeleton_for_writing`) and the SWC file reader (:func:`read_swc`: here,
  below both processing and writers, so that ``writers.readers`` and ``process.skeleton`` can
  both offer it). Building a skeleton from a mesh is processing
  (``mesh_export.process.skeleton.skeletonize``);
* a volume mesh (``VOLUME``): a meshio.Mesh with volume cells (tetra, hexahedron, wedge, pyramid
  or their quadratic kin) (meshio's own type, which every
  solver reader and meshio's writers take), carrying a ``metadata`` dict like a surface.

Importing this module imports neither trimesh nor meshio: an object can only be one of theirs
once its library is loaded, so :func:`kind_of` looks for the classes in ``sys.modules``.
"""

from __future__ import annotations

import re
import sys
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mesh_export.core.cells import is_volume_cell
from mesh_export.core.units import conversion_factor, normalize_units
from mesh_export.errors import InputError, InvalidArgumentError, InvalidSkeletonError, UnitsError

# What a writer can take.
SURFACE = "surface"
SKELETON = "skeleton"
VOLUME = "volume"
# Many cells into one output (a SONATA circuit): data no single-id export makes.
CIRCUIT = "circuit"
# Cells added to a directory of Neuroglancer layers (mesh, skeleton, synapses): a surface and,
# when a morphology is made, its skeleton and synapses together.
LAYERS = "layers"
# Many surfaces in one file to look at (glTF nodes, a VTK multiblock): a :class:`Scene`.
SCENE = "scene"
# The units a root id is written in for viewers (formats that hold scenes) unless --units or
# --scale says otherwise: in mm a dataset's whole volume (~1 mm) lies within a few units of
# the origin, inside Blender's default view (clip 0.01-1000 m, glTF's unit read as a metre),
# and a 300 um cell is 0.3 units, where in um it would sit ~1000 units out, past the far clip.
VIEWER_UNITS = "mm"


@runtime_checkable
class Surface(Protocol):
    """THE surface contract: what every surface writer (and a plugin's) may read.

    ``vertices`` (n, 3) and ``faces`` (m, 3) integer indices into them, array-like (a writer
    takes them with ``np.asarray``, so float32/int32 arrays are written without widening).
    Optional, read with a default by every writer: ``units`` of the vertices (None: unknown) and
    ``metadata``, a dict of provenance (``root_id``, ``source``, ``steps``: the steps applied,
    in order). trimesh.Trimesh and :class:`CachedSurface` are both Surfaces; so is any object
    with vertices and faces.
    """

    @property
    def vertices(self) -> Any: ...

    @property
    def faces(self) -> Any: ...


@dataclass
class CachedSurface:
    """A :class:`Surface` as fetched or cached (nm), handed as it is to a binary native writer.

    Those writers write float32 vertices and int32 indices whatever they are given, and read
    only what a Surface has; a trimesh.Trimesh would first widen both arrays to 64 bits
    (~50 MB of copies for a 1.3M-face mesh) only for the writer to narrow them again.
    """

    vertices: Any
    faces: Any
    metadata: dict[str, Any]

    @property
    def units(self) -> str | None:
        return self.metadata.get("units")

    @property
    def bounds(self) -> np.ndarray:
        """(2, 3) float64: the lowest and highest coordinates, as trimesh's ``bounds``."""
        vertices = np.asarray(self.vertices)
        # Column by column: numpy reduces an (n, 3) array over axis 0 three values at a time.
        columns = [vertices[:, k] for k in range(vertices.shape[1])]
        return np.array([[c.min() for c in columns], [c.max() for c in columns]], dtype=np.float64)


# Per-element arrays a surface may carry beside its geometry, in ``metadata[VERTEX_ATTRIBUTES]`` and
# ``metadata[FACE_ATTRIBUTES]`` (name -> array whose first axis is the vertex / face count), as
# trimesh's ``vertex_attributes``: readers put what a file holds there (``"color"``: (n, 4) uint8
# RGBA, ``"uv"``: (n, 2) float32), processing adds labels (``"compartment"``, ``"path_distance"``),
# and each writer writes those its format can hold. A step that changes the vertices or faces
# drops the arrays it would make wrong (process.derived), so a stale label is never written.
VERTEX_ATTRIBUTES = "vertex_attributes"
FACE_ATTRIBUTES = "face_attributes"
# A cell's synapses as points in its surface's frame (process.surface_labels): a dict of
# per-synapse arrays (positions, direction, partner, id, size, tag) that scene writers draw.
SYNAPSE_POINTS = "synapse_points"

# Face compartments (the SWC types; 0 for faces nearest no soma/axon/dendrite node), the names
# scene formats give their parts and the colours they draw them in (RGBA, 0-255).
COMPARTMENT_NAMES = {0: "unknown", 1: "soma", 2: "axon", 3: "basal_dendrite", 4: "apical_dendrite"}
COMPARTMENT_COLORS = {0: (160, 160, 160, 255), 1: (230, 25, 75, 255), 2: (0, 130, 200, 255),
                      3: (60, 180, 75, 255), 4: (255, 165, 0, 255)}
# Synapse points: inputs and outputs.
SYNAPSE_COLORS = {"input": (255, 225, 25, 255), "output": (145, 30, 180, 255)}


def element_attributes(mesh, which: str) -> dict[str, np.ndarray]:
    """The ``which`` (``VERTEX_ATTRIBUTES`` or ``FACE_ATTRIBUTES``) arrays of ``mesh`` whose
    length is its vertex / face count (an array of another length is stale and left out)."""
    metadata = getattr(mesh, "metadata", None) or {}
    arrays = metadata.get(which) or {}
    count = len(mesh.vertices) if which == VERTEX_ATTRIBUTES else len(mesh.faces)
    return {name: np.asarray(values) for name, values in arrays.items() if len(values) == count}


@dataclass
class Scene:
    """Several cells' surfaces to look at in one file: ``cells`` are Surfaces (each with
    ``metadata["root_id"]``, and optionally ``metadata["color"]`` RGBA 0-255, face
    compartments and synapse points), all in ``units``; ``metadata``: provenance."""

    cells: list
    units: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def kind_of(data) -> str:
    """``SURFACE``, ``SKELETON`` or ``VOLUME``: which kind of data ``data`` is.

    A Skeleton is a skeleton; a meshio.Mesh with volume cells (``core.cells.is_volume_cell``:
    tetrahedra, hexahedra, wedges, pyramids, linear or quadratic) a volume mesh; a CachedSurface, a
    trimesh.Trimesh or any other :class:`Surface` a surface. Anything else (a meshio.Mesh of
    only surface cells, a trimesh.Scene, a path) raises InputError.
    """
    if isinstance(data, Skeleton):
        return SKELETON
    if isinstance(data, Scene):
        return SCENE
    if isinstance(data, CachedSurface):
        return SURFACE
    trimesh = sys.modules.get("trimesh")  # not loaded: nothing can be a Trimesh yet
    if trimesh is not None and isinstance(data, trimesh.Trimesh):
        return SURFACE
    meshio = sys.modules.get("meshio")
    if meshio is not None and isinstance(data, meshio.Mesh):
        if any(is_volume_cell(block.type) for block in data.cells):
            return VOLUME
        cells = ", ".join(sorted({block.type for block in data.cells})) or "none"
        raise InputError(f"a meshio.Mesh without volume cells (cells: {cells}) is not a volume mesh; "
                         "read surfaces with mesh_export.load")
    if isinstance(data, Surface):
        return SURFACE
    raise InputError(f"a {type(data).__name__} is not a surface mesh (vertices and faces), "
                     "a Skeleton or a meshio.Mesh of volume cells")


# ----------------------------------------------------------------------------- skeletons

# SWC structure identifiers: the standard four. Types above 4 are custom neurites (NEURON's
# Import3d names their sections ``dend_N``); 0 ("undefined") and negative types no tool reads alike.
SOMA, AXON, BASAL, APICAL = 1, 2, 3, 4


class SkeletonUnitsWarning(UserWarning):
    """A morphology is being written in units other than micrometres (NEURON's convention)."""


# ----------------------------------------------------------------------------- the type


@dataclass
class Skeleton:
    """A neuron morphology: one tree of nodes.

    ``nodes`` (n, 3) positions, ``parents`` (n,) index of each node's parent (-1 for the
    root), ``radii`` (n,), ``types`` (n,) SWC structure ids (1 soma, 2 axon, 3 basal
    dendrite, 4 apical dendrite, 5 and above custom neurites), ``units`` of positions and
    radii, ``metadata`` (provenance: source, root id, steps; ``repairs``: what reading a file
    changed, one sentence each).

    The soma is the root and any type-1 nodes hanging from it through type-1 nodes: one
    point (a sphere of the root's radius, what the skeletonizer makes), NeuroMorpho's three
    points, a chain of points or an outline as SWC files carry them. Writers build it as
    NEURON's Import3d builds the same points from SWC.
    """

    nodes: np.ndarray
    parents: np.ndarray
    radii: np.ndarray
    types: np.ndarray | None = None
    units: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: The cell's synapses mapped onto these nodes (a core.synapses.SynapseTable; its node
    #: numbers are this order's: process.synapse_map attaches it to a sorted skeleton).
    synapses: Any = None

    def __post_init__(self) -> None:
        self.nodes = np.asarray(self.nodes, dtype=np.float64).reshape(-1, 3)
        self.parents = np.asarray(self.parents).astype(np.int64, copy=False).reshape(-1)
        self.radii = np.asarray(self.radii, dtype=np.float64).reshape(-1)
        if self.types is None:
            self.types = np.full(len(self.nodes), BASAL, dtype=np.int64)
            if len(self.nodes):
                self.types[self.parents < 0] = SOMA
        else:
            self.types = np.asarray(self.types).astype(np.int64, copy=False).reshape(-1)
        if self.units is not None:
            self.units = normalize_units(self.units)

    # -- views

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def vertices(self) -> np.ndarray:
        """Alias of ``nodes`` (the name trimesh-style code expects)."""
        return self.nodes

    @property
    def edges(self) -> np.ndarray:
        """(m, 2) child, parent index pairs."""
        child = np.flatnonzero(self.parents >= 0)
        return np.column_stack([child, self.parents[child]])

    @property
    def root(self) -> int:
        roots = np.flatnonzero(self.parents < 0)
        if len(roots) != 1:
            raise InvalidSkeletonError(f"a skeleton has exactly one root; this one has {len(roots)}")
        return int(roots[0])

    def child_counts(self) -> np.ndarray:
        return np.bincount(self.parents[self.parents >= 0], minlength=len(self))

    def edge_lengths(self) -> np.ndarray:
        """Length of the edge from each node to its parent (0 for the root)."""
        lengths = np.zeros(len(self))
        child = self.parents >= 0
        lengths[child] = np.linalg.norm(self.nodes[child] - self.nodes[self.parents[child]], axis=1)
        return lengths

    def total_length(self) -> float:
        """Total cable length (sum of edge lengths), in ``units``."""
        return float(self.edge_lengths().sum())

    def neurite_length(self) -> float:
        """Cable length of the neurites without the edges from a soma point to a neurite's
        first node (NeuroM's ``total_length``; NEURON's Import3d joins those by a wire)."""
        child = np.flatnonzero(self.parents >= 0)
        keep = child[self.types[self.parents[child]] != SOMA]
        keep = keep[self.types[keep] != SOMA]
        return float(self.edge_lengths()[keep].sum())

    def membrane_area(self) -> float:
        """NEURON's membrane area of this skeleton as our SWC writer writes it, read by Import3d
        (its sections' frustums: a single-point soma a cylinder as long as wide, 4 pi r^2; a
        neurite joined to the soma by a wire, with no membrane from the soma's centre), in
        ``units``^2. Import3d's result depends on a file's order (a neurite's first section of
        one point has cable from the soma, of several a wire): another order of the same tree
        can differ by ~1e-4."""
        from mesh_export.core.import3d import import3d_sections, section_area

        sk = self.sorted()
        sections = import3d_sections(sk.types, sk.parents, sk.nodes, 2.0 * sk.radii).sections
        return float(sum(section_area(sec, sk.nodes) for sec in sections))

    # -- transforms

    def to_units(self, units: str) -> "Skeleton":
        """The same skeleton with positions and radii in ``units``."""
        target = normalize_units(units)
        if self.units is None:
            raise UnitsError(f"the skeleton's units are unknown, so it cannot be converted to {target}")
        if target == self.units:
            return self
        factor = conversion_factor(self.units, target)
        return replace(self, nodes=self.nodes * factor, radii=self.radii * factor, units=target,
                       metadata=dict(self.metadata))

    def topological_order(self) -> np.ndarray:
        """Node indices, root first, then the rest of the soma, then the neurites, every parent
        before its children (depth first, so each unbranched section's nodes are consecutive).
        The soma first: NEURON's Import3d recognises NeuroMorpho's 3-point soma only as the
        file's first three points."""
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import depth_first_order

        n = len(self)
        root = self.root
        child = np.flatnonzero(self.parents >= 0)
        graph = csr_matrix((np.ones(len(child), dtype=np.int8), (self.parents[child], child)), shape=(n, n))
        order = depth_first_order(graph, root, directed=True, return_predecessors=False)
        if len(order) != n:
            raise InvalidSkeletonError(
                f"{n - len(order)} of {n} skeleton nodes are not connected to the root (a cycle or a second tree)"
            )
        soma = self.types[order] == SOMA
        if soma[1:].any():  # a soma of several points: all of it before the neurites
            order = np.concatenate([order[soma], order[~soma]])
        return order

    def sorted(self) -> "Skeleton":
        """A copy in topological order: node 0 is the root and parents[i] < i for every other node."""
        order = self.topological_order()
        if np.array_equal(order, np.arange(len(self))):
            return self
        return self.reordered(order)

    def reordered(self, order: np.ndarray) -> "Skeleton":
        """A copy with node ``order[k]`` as node k (parents renumbered)."""
        rank = np.empty(len(self), dtype=np.int64)
        rank[order] = np.arange(len(self))
        parents = self.parents[order]
        parents = np.where(parents >= 0, rank[np.maximum(parents, 0)], -1)
        return replace(self, nodes=self.nodes[order], parents=parents, radii=self.radii[order],
                       types=self.types[order], metadata=dict(self.metadata))

    # -- checks

    def validate(self) -> "Skeleton":
        """Raise InvalidSkeletonError unless this is one tree with finite positions, finite
        radii that are not negative, a soma at the root (type 1, and any other soma node hangs
        from it through soma nodes), neurite types 2 and above, and known units.

        A zero radius is allowed: NEURON loads it (a zero-diameter 3-D point) and MorphIO
        reads it with a warning; the writers say how many there are.
        """
        n = len(self)
        if n == 0:
            raise InvalidSkeletonError("the skeleton is empty")
        for name, arr in (("parents", self.parents), ("radii", self.radii), ("types", self.types)):
            if len(arr) != n:
                raise InvalidSkeletonError(f"skeleton {name} has {len(arr)} entries for {n} nodes")
        if self.units is None:
            raise UnitsError("the skeleton's units are unknown; morphologies must state them")
        if not np.isfinite(self.nodes).all():
            raise InvalidSkeletonError("the skeleton has NaN or infinite node positions")
        bad = ~(np.isfinite(self.radii) & (self.radii >= 0))
        if bad.any():
            raise InvalidSkeletonError(f"{int(bad.sum())} skeleton nodes have a negative or NaN radius")
        if (self.parents >= n).any() or (self.parents < -1).any():
            raise InvalidSkeletonError("skeleton parent indices are out of range")
        if (self.parents == np.arange(n)).any():
            raise InvalidSkeletonError("a skeleton node is its own parent")
        root = self.root
        self.topological_order()  # every node reachable from the root: no cycles, no second tree
        if self.types[root] != SOMA:
            raise InvalidSkeletonError(f"the root node has type {int(self.types[root])}, not 1 (soma)")
        if (self.types < SOMA).any():
            bad_types = sorted(set(self.types[self.types < SOMA].tolist()))
            raise InvalidSkeletonError(f"skeleton node types {bad_types} are not soma (1), axon (2), basal (3), "
                                       "apical (4) or a custom neurite type (5 and above)")
        soma = np.flatnonzero(self.types == SOMA)
        stray = soma[(soma != root) & (self.types[np.maximum(self.parents[soma], 0)] != SOMA)]
        if len(stray):
            raise InvalidSkeletonError(f"{len(stray)} soma (type 1) nodes hang from a neurite, not from the soma "
                                       f"(node {int(stray[0])})")
        return self


def output_units(units: str | None, allow_units: bool = False, format_name: str = "this format") -> str:
    """The units to write a morphology in: micrometres unless explicitly allowed otherwise."""
    target = normalize_units(units) if units else "um"
    if target != "um":
        if not allow_units:
            raise UnitsError(
                f"{format_name} files are read as micrometres by NEURON and other tools; writing {target} "
                "needs an explicit --allow-units"
            )
        warnings.warn(f"writing a {format_name} morphology in {target}, not micrometres: "
                      "NEURON will read the numbers as micrometres", SkeletonUnitsWarning, stacklevel=3)
    return target


def as_skeleton_for_writing(skeleton: Skeleton, units: str | None, allow_units: bool, format_name: str,
                            sort: bool = True) -> Skeleton:
    """Validated, converted to the output units and (unless ``sort`` is False) topologically
    sorted; always a copy, so a writer may change its arrays."""
    if not isinstance(skeleton, Skeleton):
        raise InvalidArgumentError(f"{format_name} writes a Skeleton (see mesh_export.process.skeleton.skeletonize), "
                                   f"not a {type(skeleton).__name__}")
    target = output_units(units, allow_units, format_name)
    skeleton.validate()
    converted = skeleton.to_units(target)
    if converted is skeleton:
        converted = replace(skeleton, nodes=skeleton.nodes.copy(), radii=skeleton.radii.copy(),
                            metadata=dict(skeleton.metadata))
    return converted.sorted() if sort else converted


# ----------------------------------------------------------------------------- SWC files

def read_swc(path) -> Skeleton:
    """An SWC file as a Skeleton in micrometres (the format's convention; a header line
    ``# units: nm``, as mesh-export writes with ``--allow-units``, says otherwise), as NEURON's
    Import3d and MorphIO read it, or an InputError naming the file and line.

    Real files vary; read as those tools read them, each change recorded as one sentence in
    ``metadata["repairs"]`` (writers put them in their header, ``convert --json`` lists them):
    an uncommented column header before the first node (skipped), ids from 0 or with gaps,
    ids out of order and parents listed after their children (the tree is the same; writers
    renumber it), several trees (each extra root joined to the soma by a wire, as NEURON's
    Import3d joins it), radius 0 (kept: NEURON reads a zero-diameter
    point, MorphIO warns). Multi-point somata (NeuroMorpho's three points, a chain, an
    outline) and custom types above 4 are kept as they are.

    Refused: a line that is not 7 numbers after the first node, NaN or infinite values, a
    negative radius, type 0 or negative, duplicate ids, a parent id that names no node, a
    node that is its own ancestor (a cycle: InvalidSkeletonError, exit 15, naming its nodes), no soma
    (type 1) at a root, soma points
    hanging from a neurite.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input file not found: {path}")
    rows, line_numbers, skipped = [], [], []
    units = "um"
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                line, _, comment = line.partition("#")
                line = line.strip()
                if not line:
                    stated = _STATED_UNITS.match(comment) if not rows else None
                    if stated:  # our own header: a file written with --units nm --allow-units
                        units = stated.group(1)
                    continue
                fields = line.split()
                try:
                    values = [float(v) for v in fields[:7]]
                except ValueError:
                    values = None
                if values is None or len(values) < 7:
                    if not rows and values is None:
                        skipped.append(number)  # a column header: Import3d and MorphIO skip it too
                        continue
                    raise InputError(f"{path}:{number}: an SWC line is 7 numbers (id type x y z radius parent), "
                                     f"not {line[:60]!r}")
                rows.append(values)
                line_numbers.append(number)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not rows:
        raise InputError(f"{path} holds no SWC nodes")
    data = np.asarray(rows)
    lines = np.asarray(line_numbers)

    def refuse(rows_at, what):
        raise InputError(f"{path}:{int(lines[rows_at[0]])}: {what}")

    bad = np.flatnonzero(~np.isfinite(data).all(axis=1))
    if len(bad):
        refuse(bad, "NaN or infinite value")
    for column, what in ((0, "id"), (1, "type"), (6, "parent id")):
        bad = np.flatnonzero(data[:, column] != np.round(data[:, column]))
        if len(bad):
            refuse(bad, f"the {what} {data[bad[0], column]:g} is not a whole number")
    bad = np.flatnonzero(data[:, 5] < 0)
    if len(bad):
        refuse(bad, f"negative radius {data[bad[0], 5]:g}")
    types = data[:, 1].astype(np.int64)
    bad = np.flatnonzero(types < SOMA)
    if len(bad):
        refuse(bad, f"type {types[bad[0]]} is neither soma (1), axon (2), basal (3), apical (4) nor a custom "
                    "neurite type (5 and above)")
    ids = data[:, 0].astype(np.int64)
    parent_ids = data[:, 6].astype(np.int64)
    order = np.argsort(ids, kind="stable")
    repeated = np.flatnonzero(ids[order][1:] == ids[order][:-1])
    if len(repeated):
        first, second = order[repeated[0]], order[repeated[0] + 1]
        refuse([second], f"id {ids[second]} already used on line {int(lines[first])}")
    position = np.minimum(np.searchsorted(ids[order], parent_ids), len(ids) - 1)
    found = ids[order][position] == parent_ids
    dangling = np.flatnonzero((~found) & (parent_ids >= 0))
    if len(dangling):
        refuse(dangling, f"parent id {parent_ids[dangling[0]]} names no node")
    parents = np.where(found, order[position], -1)
    if (parents == np.arange(len(ids))).any():
        refuse(np.flatnonzero(parents == np.arange(len(ids))), "a node is its own parent")

    repairs = []
    if skipped:
        repairs.append(f"line {skipped[0]} skipped: not SWC numbers (a column header), as NEURON's Import3d "
                       "skips it (MorphIO refuses the file)"
                       if len(skipped) == 1 else
                       f"lines {', '.join(map(str, skipped))} skipped: not SWC numbers (column headers)")
    roots = np.flatnonzero(parents < 0)
    soma_roots = roots[types[roots] == SOMA]
    if not len(soma_roots):
        refuse([roots[0]] if len(roots) else [0],
               "no soma: the root is not type 1" if len(roots) else "no root (every node has a parent)")
    root = int(soma_roots[0])
    if len(roots) > 1:
        extra = roots[roots != root]
        anchor = _extra_tree_anchor(parents, types, root)
        parents[extra] = anchor
        at = ", ".join(str(int(lines[k])) for k in extra[:5]) + (" ..." if len(extra) > 5 else "")
        repairs.append(f"{len(extra)} more tree{'s' if len(extra) > 1 else ''} (root at line {at}) joined to the "
                       f"soma (line {int(lines[anchor])}) by a wire, as NEURON's Import3d joins them")
    try:
        units = normalize_units(units)
    except UnitsError:
        units = "um"  # a header naming something else: SWC's convention
    skeleton = Skeleton(nodes=data[:, 2:5], parents=parents, radii=data[:, 5], types=types, units=units,
                        metadata={"source": {"file": str(path)}})
    try:
        skeleton.topological_order()
    except InvalidSkeletonError:
        reached = np.zeros(len(ids), dtype=bool)
        reached[_reachable(parents, root)] = True
        cycle = _cycle_from(parents, int(np.flatnonzero(~reached)[0]))
        named = ", ".join(str(int(ids[k])) for k in cycle[:8]) + (" ..." if len(cycle) > 8 else "")
        raise InvalidSkeletonError(f"{path}:{int(lines[min(cycle)])}: nodes {named} form a cycle (each is its own "
                                   "ancestor): not a tree") from None
    soma = np.flatnonzero(types == SOMA)
    stray = soma[(soma != root) & (types[np.maximum(parents[soma], 0)] != SOMA)]
    if len(stray):
        refuse(stray, "a soma (type 1) point hangs from a neurite point")
    if (ids != np.arange(1, len(ids) + 1)).any():
        if (np.diff(ids) <= 0).any() or (parent_ids >= ids).any():
            repairs.append("ids out of order or parents listed after their children: the tree is kept, "
                           "renumbered from 1 with every parent first")
        else:
            repairs.append(f"ids from {ids.min()} to {ids.max()} for {len(ids)} nodes: renumbered from 1")
    elif (parent_ids >= ids).any():
        repairs.append("parents listed after their children: the tree is kept, every parent first")
    zero = np.flatnonzero(data[:, 5] == 0)
    if len(zero):
        repairs.append(f"{len(zero)} node{'s' if len(zero) > 1 else ''} with radius 0 (first at line "
                       f"{int(lines[zero[0]])}) kept: NEURON reads a zero-diameter point, MorphIO warns")
    if repairs:
        skeleton.metadata["repairs"] = repairs
    return skeleton


_STATED_UNITS = re.compile(r"\s*units:\s*([A-Za-z]+)\b")


def _extra_tree_anchor(parents: np.ndarray, types: np.ndarray, root: int) -> int:
    """The soma point an extra tree hangs from so that NEURON's Import3d joins it as it joins
    a root-less tree itself: by a wire (no cable from the soma), at the soma's middle. A
    single-point soma, or a soma whose root has several soma children: the root. A chain or an
    outline from the root: its second point (inside the soma's first section)."""
    soma_children = np.flatnonzero((parents == root) & (types == SOMA))
    if len(soma_children) == 1:
        second = int(soma_children[0])
        if ((parents == second) & (types == SOMA)).any():
            return second
    return root


def _cycle_from(parents: np.ndarray, start: int) -> list[int]:
    """The rows of the cycle that following parents from ``start`` (a node no root reaches) ends in."""
    seen, node = {}, start
    while node not in seen:
        seen[node] = len(seen)
        node = int(parents[node])
    order = list(seen)
    return order[seen[node]:]


def _reachable(parents: np.ndarray, root: int) -> np.ndarray:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import breadth_first_order

    n = len(parents)
    child = np.flatnonzero(parents >= 0)
    graph = csr_matrix((np.ones(len(child), dtype=np.int8), (parents[child], child)), shape=(n, n))
    return breadth_first_order(graph, root, directed=True, return_predecessors=False)
