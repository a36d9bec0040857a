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
* a volume mesh (``VOLUME``): a meshio.Mesh with tetra cells (meshio's own type, which every
  solver reader and meshio's writers take), carrying a ``metadata`` dict like a surface.

Importing this module imports neither trimesh nor meshio: an object can only be one of theirs
once its library is loaded, so :func:`kind_of` looks for the classes in ``sys.modules``.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mesh_export.core.units import conversion_factor, normalize_units
from mesh_export.errors import InputError, InvalidArgumentError, InvalidSkeletonError, UnitsError

# What a writer can take.
SURFACE = "surface"
SKELETON = "skeleton"
VOLUME = "volume"


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


def kind_of(data) -> str:
    """``SURFACE``, ``SKELETON`` or ``VOLUME``: which kind of data ``data`` is.

    A Skeleton is a skeleton; a meshio.Mesh with tetra cells a volume mesh; a CachedSurface, a
    trimesh.Trimesh or any other :class:`Surface` a surface. Anything else (a meshio.Mesh of
    only surface cells, a trimesh.Scene, a path) raises InputError.
    """
    if isinstance(data, Skeleton):
        return SKELETON
    if isinstance(data, CachedSurface):
        return SURFACE
    trimesh = sys.modules.get("trimesh")  # not loaded: nothing can be a Trimesh yet
    if trimesh is not None and isinstance(data, trimesh.Trimesh):
        return SURFACE
    meshio = sys.modules.get("meshio")
    if meshio is not None and isinstance(data, meshio.Mesh):
        if any(block.type == "tetra" for block in data.cells):
            return VOLUME
        cells = ", ".join(sorted({block.type for block in data.cells})) or "none"
        raise InputError(f"a meshio.Mesh without tetra cells (cells: {cells}) is not a volume mesh; "
                         "read surfaces with mesh_export.load")
    if isinstance(data, Surface):
        return SURFACE
    raise InputError(f"a {type(data).__name__} is not a surface mesh (vertices and faces), "
                     "a Skeleton or a tetrahedral meshio.Mesh")


# ----------------------------------------------------------------------------- skeletons

# SWC structure identifiers (the standard four; NEURON and MorphIO know no others reliably).
SOMA, AXON, BASAL, APICAL = 1, 2, 3, 4
_NEURITE_TYPES = (AXON, BASAL, APICAL)


class SkeletonUnitsWarning(UserWarning):
    """A morphology is being written in units other than micrometres (NEURON's convention)."""


# ----------------------------------------------------------------------------- the type


@dataclass
class Skeleton:
    """A neuron morphology: one tree of nodes.

    ``nodes`` (n, 3) positions, ``parents`` (n,) index of each node's parent (-1 for the
    root), ``radii`` (n,), ``types`` (n,) SWC structure ids (1 soma, 2 axon, 3 basal
    dendrite, 4 apical dendrite), ``units`` of positions and radii, ``metadata``
    (provenance: source, root id, steps).
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

    def membrane_area(self) -> float:
        """Frustum (lateral) area of the neurites plus a sphere for a single-point soma,
        as NEURON's Import3d computes it (edges from the soma are inside the soma)."""
        child = np.flatnonzero(self.parents >= 0)
        parent = self.parents[child]
        neurite = self.types[parent] != SOMA
        a, b = child[neurite], parent[neurite]
        length = np.linalg.norm(self.nodes[a] - self.nodes[b], axis=1)
        ra, rb = self.radii[a], self.radii[b]
        area = float(np.sum(np.pi * (ra + rb) * np.sqrt(length**2 + (ra - rb) ** 2)))
        soma = np.flatnonzero(self.types == SOMA)
        if len(soma) == 1:
            area += 4.0 * np.pi * float(self.radii[soma[0]]) ** 2
        return area

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
        """Node indices, root first, every parent before its children (depth first, so each
        unbranched section's nodes are consecutive)."""
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
        return order

    def sorted(self) -> "Skeleton":
        """A copy in topological order: node 0 is the root and parents[i] < i for every other node."""
        order = self.topological_order()
        if np.array_equal(order, np.arange(len(self))):
            return self
        rank = np.empty(len(self), dtype=np.int64)
        rank[order] = np.arange(len(self))
        parents = self.parents[order]
        parents = np.where(parents >= 0, rank[np.maximum(parents, 0)], -1)
        return replace(self, nodes=self.nodes[order], parents=parents, radii=self.radii[order],
                       types=self.types[order], metadata=dict(self.metadata))

    # -- checks

    def validate(self) -> "Skeleton":
        """Raise InvalidSkeletonError unless this is one tree with finite positions, finite
        positive radii, standard types (soma only at the root) and known units."""
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
        bad = ~(np.isfinite(self.radii) & (self.radii > 0))
        if bad.any():
            raise InvalidSkeletonError(f"{int(bad.sum())} skeleton nodes have a zero, negative or NaN radius")
        if (self.parents >= n).any() or (self.parents < -1).any():
            raise InvalidSkeletonError("skeleton parent indices are out of range")
        if (self.parents == np.arange(n)).any():
            raise InvalidSkeletonError("a skeleton node is its own parent")
        root = self.root
        self.topological_order()  # every node reachable from the root: no cycles, no second tree
        if self.types[root] != SOMA:
            raise InvalidSkeletonError(f"the root node has type {int(self.types[root])}, not 1 (soma)")
        others = np.delete(self.types, root)
        if not np.isin(others, _NEURITE_TYPES).all():
            bad_types = sorted(set(np.unique(others).tolist()) - set(_NEURITE_TYPES))
            raise InvalidSkeletonError(
                f"skeleton node types {bad_types} are not axon/basal/apical (2/3/4); only the root is soma (1)"
            )
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


def as_skeleton_for_writing(skeleton: Skeleton, units: str | None, allow_units: bool, format_name: str) -> Skeleton:
    """Validated, converted to the output units and topologically sorted."""
    if not isinstance(skeleton, Skeleton):
        raise InvalidArgumentError(f"{format_name} writes a Skeleton (see mesh_export.process.skeleton.skeletonize), "
                                   f"not a {type(skeleton).__name__}")
    target = output_units(units, allow_units, format_name)
    skeleton.validate()
    return skeleton.to_units(target).sorted()


# ----------------------------------------------------------------------------- SWC files

def read_swc(path) -> Skeleton:
    """An SWC file as a Skeleton in micrometres (the format's convention), node order kept.

    Read as found, not validated: ``info`` and ``preview`` describe files with several
    roots or odd types too. Ids need not be contiguous; a parent id that names no node is
    an error.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input file not found: {path}")
    rows = []
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                fields = line.split()
                if len(fields) < 7:
                    raise InputError(f"{path}:{number}: an SWC line needs 7 fields "
                                     "(id type x y z radius parent)")
                rows.append([float(v) for v in fields[:7]])
    except ValueError as exc:
        raise InputError(f"cannot read {path} as SWC: {exc}") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not rows:
        raise InputError(f"{path} holds no SWC nodes")
    data = np.asarray(rows)
    ids = data[:, 0].astype(np.int64)
    parent_ids = data[:, 6].astype(np.int64)
    if len(np.unique(ids)) != len(ids):
        raise InputError(f"{path}: node ids are not unique")
    order = np.argsort(ids)
    position = np.minimum(np.searchsorted(ids[order], parent_ids), len(ids) - 1)
    found = ids[order][position] == parent_ids
    parents = np.where(found, order[position], -1)
    dangling = (~found) & (parent_ids >= 0)
    if dangling.any():
        raise InputError(f"{path}: {int(dangling.sum())} nodes name a parent id that does not exist")
    return Skeleton(nodes=data[:, 2:5], parents=parents, radii=data[:, 5], types=data[:, 1].astype(np.int64),
                    units="um", metadata={"source": {"file": str(path)}})
