"""CAVE's materialization, skeleton and L2 cache services, faked on a FixtureServer.

Enough of each for the real caveclient (8.x) code paths mesh-export uses:

- MaterializationEngine (api v3, server 5.x): versions and their metadata, table metadata
  (``voxel_resolution``), and ``query_table``'s POST ``.../table/<t>/query`` with the
  ``filter_equal_dict`` / ``filter_in_dict`` body caveclient sends, answered as caveclient asks:
  an Arrow IPC stream (``Content-Type: data.arrow``) with positions split into ``_x/_y/_z``
  columns, converted to ``desired_resolution`` (and said so in ``dataframe_resolution``).
- SkeletonService (server 0.22): versions, and ``get_skeleton``'s async "flatdict" route,
  a gzipped JSON dict (vertices and radius in nm, edges, root, compartment, meta).
- The L2 cache's ``table_mapping`` (SkeletonClient checks ``has_cache()`` first) and the
  chunkedgraph's ``valid_nodes`` (it checks the root id is valid).

Tables are pandas DataFrames with positions as ``(n, 3)`` voxel arrays in ``<name>_position``
columns, as CAVE stores them. Use::

    cave = FakeCave(srv, "stack", graphene_table="g")
    cave.add_table("nucleus_detection_v0", frame, voxel_resolution=(4, 4, 40))
    cave.add_skeleton(root_id, skeleton_dict)
"""

from __future__ import annotations

import gzip
import io
import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

MATERIALIZE_VERSION = "5.13.0"
SKELETON_SERVICE_VERSION = "0.22.0"
SKELETON_VERSIONS = [-1, 0, 1, 2, 3, 4]


@dataclass
class _Table:
    frame: object  # pandas.DataFrame
    voxel_resolution: tuple
    schema: str = "synapse"


@dataclass
class FakeCave:
    server: object  # tests.support.server.FixtureServer
    datastack: str
    graphene_table: str | None = None
    version: int = 943
    tables: dict = field(default_factory=dict)
    skeletons: dict = field(default_factory=dict)
    queries: list = field(default_factory=list)  # (table, body) of every query_table request
    row_limit: int = 200_000  # rows of one answer at most, as a materialization server caps them
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self):
        self._install()

    # ------------------------------------------------------------------ content

    def add_table(self, name: str, frame, *, voxel_resolution=(4.0, 4.0, 40.0), schema: str = "synapse") -> None:
        self.tables[name] = _Table(frame, tuple(float(v) for v in voxel_resolution), schema)

    def add_skeleton(self, root_id: int, skeleton: dict) -> None:
        """``skeleton`` as the service's flatdict: vertices/radius in nm, edges, root, compartment, meta."""
        self.skeletons[int(root_id)] = skeleton

    # ------------------------------------------------------------------- routes

    def _install(self) -> None:
        add = self.server.add_route
        ds = self.datastack
        mat = r"/materialize/api/v3/datastack/" + ds
        add(r"/materialize/api/versions", lambda r: (200, {}, [3]))
        add(r"/materialize/version", lambda r: (200, {}, MATERIALIZE_VERSION))
        add(mat + r"/versions", lambda r: (200, {}, [self.version]))
        add(mat + r"/metadata", lambda r: (200, {}, [self._version_meta()]))
        add(mat + r"/version/(\d+)", self._version_route)
        add(mat + r"/version/(\d+)/tables", lambda r: (200, {}, sorted(self.tables)))
        # get_tables() still asks the v2 API
        add(r"/materialize/api/v2/datastack/" + ds + r"/version/(\d+)/tables", lambda r: (200, {}, sorted(self.tables)))
        add(mat + r"/version/(\d+)/table/([^/]+)/metadata", self._table_meta_route)
        add(mat + r"/version/(\d+)/table/([^/]+)/query", self._query_route, method="POST")
        sk = r"/skeletoncache/api"
        add(sk + r"/versions", lambda r: (200, {}, SKELETON_VERSIONS))  # skeleton versions, not API ones
        add(sk + r"/version", lambda r: (200, {}, SKELETON_SERVICE_VERSION))
        add(sk + r"/v1/" + ds + r"/async/get_skeleton/(-?\d+)/(\d+)/([a-z]+)", self._skeleton_route)
        add(r"/l2cache/api/v1/table_mapping", lambda r: (200, {}, self._table_mapping()))
        add(r"/segmentation/api/v1/table/([^/]+)/valid_nodes", self._valid_nodes_route)

    def _version_meta(self) -> dict:
        return {"version": self.version, "valid": True, "datastack": self.datastack,
                "time_stamp": "2024-01-01T00:00:00.000000", "expires_on": "2099-01-01T00:00:00.000000",
                "id": 1, "status": "AVAILABLE", "is_merged": True}

    def _version_route(self, request):
        if int(request.match.group(1)) != self.version:
            return 404, {}, {"message": f"version {request.match.group(1)} not found"}
        return 200, {}, self._version_meta()

    def _table(self, request):
        version, name = int(request.match.group(1)), request.match.group(2)
        if version != self.version:
            return None, (404, {}, {"message": f"version {version} not found"})
        if name not in self.tables:
            return None, (404, {}, {"message": f"table {name} not found in {self.datastack} v{version}"})
        return self.tables[name], None

    def _table_meta_route(self, request):
        table, error = self._table(request)
        if error:
            return error
        x, y, z = table.voxel_resolution
        return 200, {}, {"table_name": request.match.group(2), "schema_type": table.schema,
                         "voxel_resolution_x": x, "voxel_resolution_y": y, "voxel_resolution_z": z,
                         "voxel_resolution": [x, y, z], "valid": True, "reference_table": None}

    def _query_route(self, request):
        import pandas as pd
        import pyarrow as pa

        table, error = self._table(request)
        if error:
            return error
        name = request.match.group(2)
        body = json.loads(request.body or b"{}")
        with self._lock:
            self.queries.append((name, body))
        frame = table.frame
        keep = np.ones(len(frame), dtype=bool)
        for column, value in (body.get("filter_equal_dict") or {}).get(name, {}).items():
            keep &= frame[column].to_numpy() == value
        for column, values in (body.get("filter_in_dict") or {}).get(name, {}).items():
            keep &= np.isin(frame[column].to_numpy(), values)
        rows = frame[keep]
        if "id" in rows:  # a stable order, so that limit/offset pages neither repeat nor skip a row
            rows = rows.sort_values("id", kind="stable")
        offset = int(body.get("offset") or 0)
        limit = min(int(body.get("limit") or self.row_limit), self.row_limit)
        rows = rows.iloc[offset: offset + limit]
        desired = body.get("desired_resolution")
        scale = (np.asarray(table.voxel_resolution) / np.asarray(desired, dtype=float)
                 if desired is not None else np.ones(3))
        out = {}
        for column in rows.columns:
            if column.endswith("_position"):
                points = np.asarray(rows[column].tolist(), dtype=np.float64).reshape(-1, 3) * scale
                for axis, suffix in enumerate("xyz"):
                    out[f"{column}_{suffix}"] = points[:, axis]
            else:
                out[column] = rows[column].to_numpy()
        sink = io.BytesIO()
        frame_out = pa.Table.from_pandas(pd.DataFrame(out), preserve_index=False)
        with pa.ipc.new_stream(sink, frame_out.schema) as writer:
            writer.write_table(frame_out)
        headers = {"Content-Type": "data.arrow"}
        if desired is not None:
            headers["dataframe_resolution"] = ", ".join(str(float(v)) for v in desired)
        return 200, headers, sink.getvalue()

    def _table_mapping(self) -> dict:
        if self.graphene_table is None:
            return {}
        return {self.graphene_table: {"l2cache_id": f"{self.graphene_table}_l2", "cv_path": None}}

    def _valid_nodes_route(self, request):
        body = json.loads(request.body or b"{}")
        ids = [int(i) for i in body.get("node_ids", [])]
        return 200, {}, {"valid_roots": ids}

    def _skeleton_route(self, request):
        root_id, fmt = int(request.match.group(2)), request.match.group(3)
        skeleton = self.skeletons.get(root_id)
        if skeleton is None:
            return 404, {}, {"message": f"no skeleton for {root_id}"}
        if fmt != "flatdict":
            return 400, {}, {"message": f"format {fmt} not faked"}
        payload = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in skeleton.items()}
        return 200, {"Content-Type": "application/octet-stream"}, gzip.compress(json.dumps(payload).encode())


def nucleus_frame(rows, voxel=(4.0, 4.0, 40.0)):
    """A soma table (as ``nucleus_detection_v0``): ``rows`` of (root id, position nm, volume um^3)."""
    import pandas as pd

    voxel = np.asarray(voxel, dtype=np.float64)
    return pd.DataFrame({
        "id": np.arange(1, len(rows) + 1, dtype=np.int64),
        "valid": np.ones(len(rows), dtype=bool),
        "pt_root_id": np.array([int(r[0]) for r in rows], dtype=np.int64),
        "volume": np.array([float(r[2]) for r in rows]),
        "pt_position": [np.asarray(r[1], dtype=np.float64) / voxel for r in rows],
    })


def synapse_frame(root_id: int, pre_nm, post_nm, partner: int = 864691135999999999, voxel=(4.0, 4.0, 40.0)):
    """A synapse table (as ``synapses_pni_2``): the cell's outputs (``pre``) and inputs (``post``)."""
    import pandas as pd

    voxel = np.asarray(voxel, dtype=np.float64)
    pre, post = np.asarray(pre_nm).reshape(-1, 3), np.asarray(post_nm).reshape(-1, 3)
    n_pre, n_post = len(pre), len(post)
    return pd.DataFrame({
        "id": np.arange(n_pre + n_post, dtype=np.int64),
        "pre_pt_root_id": np.concatenate([np.full(n_pre, root_id), np.full(n_post, partner)]).astype(np.int64),
        "post_pt_root_id": np.concatenate([np.full(n_pre, partner), np.full(n_post, root_id)]).astype(np.int64),
        "size": np.full(n_pre + n_post, 500, dtype=np.int64),
        "ctr_pt_position": list(np.concatenate([pre, post]) / voxel),
    })


def skeleton_dict(skeleton, axon_types=(2,)) -> dict:
    """A mesh-export Skeleton (nm) as the skeleton service's flatdict."""
    n = len(skeleton)
    compartment = np.where(np.isin(skeleton.types, axon_types), 2, 3)
    compartment[skeleton.root] = 1
    child = np.flatnonzero(skeleton.parents >= 0)
    return {"vertices": skeleton.nodes, "radius": skeleton.radii,
            "edges": np.column_stack([child, skeleton.parents[child]]), "root": int(skeleton.root),
            "compartment": compartment, "mesh_to_skel_map": np.zeros(0, dtype=np.int64),
            "meta": {"root_id": None, "soma_pt_x": float(skeleton.nodes[skeleton.root, 0]),
                     "soma_radius": float(skeleton.radii[skeleton.root]), "n_vertices": n}}


def cell_server(directory, root_id: int, mesh, token: str, datastacks: dict):
    """A FixtureServer serving ``mesh`` as ``root_id`` of a graphene layer ("cells"), with a
    datastack (and its FakeCave, in ``srv.fakes``) per ``datastacks`` entry: name -> the
    info's extra fields (``soma_table``, ``synapse_table``)."""
    return cells_server(directory, {root_id: mesh}, token, datastacks)


@contextmanager
def cells_server(directory, meshes: dict, token: str, datastacks: dict):
    """:func:`cell_server` for several cells: ``meshes`` root id -> mesh."""
    from support.precomputed import LayerGeometry, write_graphene_layer
    from support.server import FixtureServer

    geometry = LayerGeometry.covering(meshes, resolution=(8.0, 8.0, 40.0), chunk_size=(4096, 4096, 512))
    write_graphene_layer(directory / "graphene", meshes, geometry=geometry, table="cells")
    with FixtureServer(directory, token=token) as srv:
        srv.add_graphene("cells", directory / "graphene")
        srv.fakes = {}
        for name, extra in datastacks.items():
            srv.add_datastack(name, graphene_table="cells", extra=extra)
            srv.fakes[name] = FakeCave(srv, name, graphene_table="cells")
        yield srv
