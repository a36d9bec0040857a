"""CAVE's tables and services for a root id: nucleus, synapses (and their spine/shaft/soma
predictions), the skeleton service's skeleton. Retrieval only: processing receives the answers.

- ``nucleus``: the cell's nucleus position from the datastack's soma table (minnie65:
  ``nucleus_detection_v0``), via caveclient's ``materialize.query_table(table,
  filter_equal_dict={"pt_root_id": id}, desired_resolution=[1, 1, 1])``: nanometres.
- ``synapses``: the cell's output (``pre_pt_root_id == id``) and input (``post_pt_root_id ==
  id``) synapses from the datastack's synapse table (the datastack info's ``synapse_table``;
  minnie65: ``synapses_pni_2``): ids, both root ids, size, ``ctr_pt_position`` in nm, as
  :class:`~mesh_export.core.synapses.SynapseRows`, read in pages of :data:`PAGE_ROWS`
  (``limit``/``offset``: a materialization server caps the rows of one answer), with the
  spine/shaft/soma ``tag`` of the datastack's prediction table where it has one
  (:data:`TAG_TABLES`; minnie65: ``synapse_target_predictions_ssa``, ``target_id`` -> ``tag``).
- ``service_skeleton``: the CAVE skeleton service's skeleton (``SkeletonClient.get_skeleton(
  root_id, output_format="dict")``: vertices and radius in nm, edges, compartments) as a
  :class:`~mesh_export.model.Skeleton`.

Each lookup goes through the mesh cache (keyed by datastack, server, materialization version,
table and root id), is retried like every request (the fetch's time budget, shared backoff;
caveclient's own retries are off), and never ends an export: a datastack without the table,
a root id without a row, a table or service that keeps failing, or ``--offline`` without a
cached answer give ``None`` and a note saying why, and the caller falls back (soma from the
mesh, every neurite type 3, the mesh skeletonizer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from mesh_export.errors import AuthError, MeshExportError, NetworkError, NotFoundError

__all__ = ["CaveRequest", "Lookup", "nucleus", "synapses", "service_skeleton", "skeleton_from_dict", "TAG_TABLES",
           "PAGE_ROWS"]

SKELETON_VERSION = 4
_NM = [1, 1, 1]
#: Rows asked for per synapse query; the next page starts at ``offset`` (servers cap an answer).
PAGE_ROWS = 100_000
#: Spine/shaft/soma prediction tables (``target_id`` -> ``tag``): CAVE's datastack info names
#: none, so the known ones, used where the datastack's version lists them.
TAG_TABLES = ("synapse_target_predictions_ssa",)


@dataclass
class CaveRequest:
    """Where to ask: a datastack on a CAVE server, at a materialization version."""

    datastack: str
    server: str | None = None
    version: int | None = None
    token: str | None = None
    timeout: float = 120.0
    cache_dir: Any = None
    use_cache: bool = True
    offline: bool = False
    _client: Any = field(default=None, repr=False)

    def identity(self) -> dict[str, Any]:
        return {"datastack": self.datastack, "server": self.server, "version": self.version}

    def client(self):
        """A CAVEclient for the datastack (one per request; caveclient's retries off)."""
        if self._client is None:
            from caveclient import CAVEclient
            from caveclient.endpoints import default_global_server_address

            kwargs = {"server_address": self.server or default_global_server_address, "auth_token": self.token,
                      "write_server_cache": False, "max_retries": 0}
            if self.version is not None:
                kwargs["version"] = self.version
            self._client = self._call(lambda: CAVEclient(self.datastack, **kwargs), f"datastack {self.datastack}")
        return self._client

    def _call(self, call: Callable, what: str):
        """``call()`` with our retries; CAVE's HTTP failures as mesh-export errors."""
        from requests import RequestException

        from mesh_export.retrieve.politeness import Retrier, http_status

        from mesh_export.retrieve.auth import TOKEN_HELP

        try:
            return Retrier(self.timeout)(call)
        except RequestException as exc:  # HTTPError too
            status = http_status(exc)
            kinds = {401: AuthError, 403: AuthError, 404: NotFoundError}
            error = kinds.get(status, NetworkError)
            said = {AuthError: f"CAVE refused the token for {what} ({status}): {TOKEN_HELP}",
                    NotFoundError: f"CAVE has no {what} (404)"}
            fallback = (f"CAVE answered {status} for {what}, still after retries" if status
                        else f"cannot reach CAVE for {what}: {type(exc).__name__}")
            raise error(said.get(error, fallback)) from None


@dataclass
class Lookup:
    """A lookup's answer (``value``; None when there is none), and what to say about it."""

    value: Any
    note: str
    table: str | None = None
    cache: str = "off"
    details: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {"table": self.table, "note": self.note, "cache": self.cache, **self.details}


def _cache(request: CaveRequest):
    if not request.use_cache:
        return None
    from mesh_export.retrieve.cache import MeshCache

    return MeshCache(request.cache_dir)


def _cached(request: CaveRequest, kind: str, root_id: int, fetch: Callable, encode: Callable,
            decode: Callable) -> Lookup:
    """``fetch()`` through the cache. ``encode(lookup) -> (vertices, faces, meta)`` and
    ``decode(entry) -> Lookup``; only definite answers are stored (not failures)."""
    from mesh_export.retrieve.cache import cache_key

    key = cache_key(kind=kind, root_id=int(root_id), **request.identity())
    cache = _cache(request)
    entry = cache.get(key) if cache is not None else None
    if entry is not None:
        found = decode(entry)
        found.cache = "hit"
        return found
    if request.offline:
        return _fallback("not cached, and --offline was given")
    found = fetch()
    if cache is not None and found.details.get("definite", True):
        try:
            vertices, faces, meta = encode(found)
            cache.put(key, vertices, faces, {"note": found.note, "table": found.table, **meta})
            found.cache = "miss"
        except OSError:
            found.cache = "off"
    found.details.pop("definite", None)
    return found


def _table(request: CaveRequest, field_name: str) -> str | None:
    info = request._call(lambda: request.client().info.get_datastack_info(), f"datastack {request.datastack}")
    return (info or {}).get(field_name)


def _query(request: CaveRequest, table: str, **filters):
    client = request.client()
    return request._call(lambda: client.materialize.query_table(table, desired_resolution=_NM, **filters),
                         f"table {table}")


def _fallback(note: str, table: str | None = None, definite: bool = False) -> Lookup:
    return Lookup(None, note, table, details={"definite": definite})


def _table_rows(request: CaveRequest, kind: str, filters: list[dict]):
    """``(table, [rows per filter], None)`` from the datastack's ``<kind>_table``, or
    ``(table, None, fallback)``: a Lookup of None saying why (no such table, a failure)."""
    try:
        table = _table(request, f"{kind}_table")
    except MeshExportError as exc:
        return None, None, _fallback(f"could not read the datastack's {kind} table name ({exc})")
    if not table:
        return None, None, _fallback(f"datastack {request.datastack} names no {kind} table", definite=True)
    frames = []
    for equal in filters:
        try:
            frames.append(_query(request, table, filter_equal_dict=equal))
        except NotFoundError:
            return table, None, _fallback(f"{kind} table {table} not found", table, definite=True)
        except MeshExportError as exc:
            return table, None, _fallback(f"{kind} table {table} could not be read ({exc})", table)
    return table, frames, None


def nucleus(request: CaveRequest, root_id: int) -> Lookup:
    """The nucleus position (nm) of ``root_id`` from the datastack's soma table, or None with why."""

    def fetch() -> Lookup:
        table, frames, fallback = _table_rows(request, "soma", [{"pt_root_id": int(root_id)}])
        if fallback is not None:
            return fallback
        rows = frames[0]
        if rows is None or len(rows) == 0:
            return _fallback(f"no row for root id {root_id} in {table}", table, definite=True)
        note = f"nucleus from {table}"
        pick = 0
        if len(rows) > 1:
            volume = rows["volume"].to_numpy(dtype=float) if "volume" in rows else np.zeros(len(rows))
            pick = int(np.argmax(volume))
            note += f" ({len(rows)} rows for this root id, a merge?: the largest nucleus)"
        column = "pt_position" if "pt_position" in rows else next(c for c in rows.columns if c.endswith("position"))
        point = np.asarray(rows[column].iloc[pick], dtype=np.float64).reshape(3)
        return Lookup(point, note, table, details={"rows": int(len(rows)), "definite": True})

    def encode(found: Lookup):
        point = np.zeros((0, 3)) if found.value is None else np.asarray(found.value).reshape(1, 3)
        return point, np.zeros((0, 3), dtype=np.int32), {"rows": found.details.get("rows", 0)}

    def decode(entry) -> Lookup:
        value = entry.vertices[0].astype(np.float64) if len(entry.vertices) else None
        return Lookup(value, entry.meta.get("note", ""), entry.meta.get("table"), details={"rows": entry.meta.get("rows", 0)})

    return _cached(request, "cave-nucleus", root_id, fetch, encode, decode)


def _int64_pairs(values) -> np.ndarray:
    """int64 values (a column, or the rows of an (n, k) array) as int32 pairs, two per value."""
    values = np.ascontiguousarray(np.asarray(values, dtype=np.int64))
    return values.view(np.int32).reshape(len(values), -1)


def _position_column(rows) -> str | None:
    if "ctr_pt_position" in rows:
        return "ctr_pt_position"
    return next((c for c in rows.columns if str(c).endswith("position")), None)


def _paged(request: CaveRequest, table: str, equal: dict, page_rows: int):
    """(every row of ``table`` matching ``equal``, pages asked): a page (``limit``, ``offset``) at a time."""
    import pandas as pd

    client = request.client()
    pages, offset = [], 0
    while True:
        page = request._call(lambda: client.materialize.query_table(
            table, filter_equal_dict=equal, desired_resolution=_NM, limit=page_rows, offset=offset or None),
            f"table {table}")
        pages.append(page)
        offset += len(page)
        if len(page) < page_rows:
            break
    return (pages[0] if len(pages) == 1 else pd.concat(pages, ignore_index=True)), len(pages)


def _rows_of(frame, table: str):
    """A synapse table's rows as SynapseRows (positions nm)."""
    from mesh_export.core.synapses import SynapseRows

    n = len(frame)
    column = _position_column(frame)
    positions = (np.asarray(frame[column].tolist(), dtype=np.float64).reshape(-1, 3) if column and n
                 else np.zeros((0, 3)))
    get = lambda name: frame[name].to_numpy() if name in frame else None  # noqa: E731
    return SynapseRows(get("id") if "id" in frame else np.arange(n), get("pre_pt_root_id"), get("post_pt_root_id"),
                       get("size"), positions, source=f"synapses from {table}")


def _tags(request: CaveRequest, ids: np.ndarray) -> tuple[np.ndarray | None, str | None, str]:
    """(tag per synapse id or None, the prediction table, a note): from the first of
    :data:`TAG_TABLES` the datastack's version lists; its failures are a note, not an error."""
    try:
        listed = set(request._call(lambda: request.client().materialize.get_tables(), "the table list") or [])
    except MeshExportError as exc:
        return None, None, f"the table list could not be read ({exc}): tags measured"
    table = next((t for t in TAG_TABLES if t in listed), None)
    if table is None:
        return None, None, "no spine/shaft/soma prediction table: tags measured"
    client = request.client()
    found = {}
    try:
        for start in range(0, len(ids), PAGE_ROWS):
            chunk = [int(i) for i in ids[start:start + PAGE_ROWS]]
            frame = request._call(lambda: client.materialize.query_table(
                table, filter_in_dict={"target_id": chunk}, merge_reference=False), f"table {table}")
            found.update(zip(frame["target_id"].astype(np.int64).tolist(), frame["tag"].astype(str).tolist()))
    except MeshExportError as exc:
        return None, table, f"prediction table {table} could not be read ({exc}): tags measured"
    except KeyError as exc:
        return None, table, f"prediction table {table} has no column {exc}: tags measured"
    tags = np.array([found.get(int(i), "") for i in ids], dtype=object)
    return tags, table, f"tags from {table} ({int((tags != '').sum())} of {len(ids)})"


def synapses(request: CaveRequest, root_id: int, page_rows: int | None = None) -> Lookup:
    """``root_id``'s output and input synapses (a SynapseRows, positions nm) from the
    datastack's synapse table, tagged from its prediction table where it has one; or None with why."""
    from mesh_export.core.synapses import SynapseRows

    page_rows = int(page_rows or PAGE_ROWS)

    def fetch() -> Lookup:
        import pandas as pd

        table, _, fallback = _table_rows(request, "synapse", [])
        if fallback is not None:
            return fallback
        frames, pages = [], 0
        for column in ("pre_pt_root_id", "post_pt_root_id"):
            try:
                frame, count = _paged(request, table, {column: int(root_id)}, page_rows)
                frames.append(frame)
                pages += count
            except NotFoundError:
                return _fallback(f"synapse table {table} not found", table, definite=True)
            except MeshExportError as exc:
                return _fallback(f"synapse table {table} could not be read ({exc})", table)
        frame = pd.concat(frames, ignore_index=True)
        if "id" in frame:  # an autapse is in both answers: once is enough
            frame = frame.drop_duplicates("id", ignore_index=True)
        rows = _rows_of(frame, table)
        tags, tag_table, tag_note = _tags(request, rows.ids) if len(rows) else (None, None, "no synapses")
        if tags is not None:
            rows.tags = tags
        outputs = int((rows.pre == int(root_id)).sum())
        # A prediction table that failed to answer is asked again next time: not cached without it.
        definite = tags is not None or tag_table is None
        return Lookup(rows, f"synapses from {table}", table,
                      details={"pre": outputs, "post": int((rows.post == int(root_id)).sum()), "rows": len(rows),
                               "pages": pages,
                               "tags": tag_note, "tag_table": tag_table, "definite": definite})

    def encode(found: Lookup):
        # Every column as int32 pairs of its 64-bit pattern (the cache's "faces"): root ids need
        # all 64 bits, and positions come back bit for bit, so a cached answer maps as a fresh one.
        if found.value is None:
            return np.zeros((0, 0)), np.zeros((0, 15), dtype=np.int32), {"none": True}
        rows = found.value
        codes = np.array([TAG_CODES.get(str(t), 0) for t in rows.tags], dtype=np.int32).reshape(-1, 1)
        links = np.column_stack([_int64_pairs(rows.ids), _int64_pairs(rows.pre), _int64_pairs(rows.post),
                                 _int64_pairs(rows.positions.view(np.int64)), _int64_pairs(rows.size.view(np.int64)),
                                 codes])
        details = {k: v for k, v in found.details.items() if k != "definite"}
        return np.zeros((len(rows), 0)), links, {**details, "source": rows.source}

    def decode(entry) -> Lookup:
        meta = dict(entry.meta)
        note, table = meta.pop("note", ""), meta.pop("table", None)
        if meta.get("none"):
            return Lookup(None, note, table)
        links = np.ascontiguousarray(entry.faces, dtype=np.int32)
        bits = lambda a, b: np.ascontiguousarray(links[:, a:b]).view(np.int64)  # noqa: E731
        tags = np.array([TAGS_BY_CODE[c] for c in links[:, 14].tolist()], dtype=object)
        rows = SynapseRows(bits(0, 2).reshape(-1), bits(2, 4).reshape(-1), bits(4, 6).reshape(-1),
                           bits(12, 14).view(np.float64).reshape(-1), bits(6, 12).view(np.float64).reshape(-1, 3),
                           tags, meta.pop("source", note))
        return Lookup(rows, note, table, details=meta)

    return _cached(request, "cave-synapses-v2", root_id, fetch, encode, decode)


TAGS_BY_CODE = ("", "soma", "shaft", "spine")
TAG_CODES = {tag: code for code, tag in enumerate(TAGS_BY_CODE) if tag}


def skeleton_from_dict(data: dict, root_id: int | None = None, note: str = "CAVE skeleton service"):
    """A skeleton service dict (vertices, radius in nm, edges, root, compartment) as a Skeleton
    rooted at its soma: compartments 1/2/3 become SWC types; radii are floored at 1 nm."""
    from mesh_export.errors import InvalidSkeletonError
    from mesh_export.model import AXON, BASAL, SOMA, Skeleton

    vertices = np.asarray(data.get("vertices", []), dtype=np.float64).reshape(-1, 3)
    edges = np.asarray(data.get("edges", []), dtype=np.int64).reshape(-1, 2)
    n = len(vertices)
    if n == 0:
        raise InvalidSkeletonError("the skeleton service returned an empty skeleton")
    radius = np.asarray(data.get("radius", np.full(n, 100.0)), dtype=np.float64).reshape(-1)
    root = int(data.get("root", 0))
    # Edges are (child, parent) in MeshParty skeletons; orient them away from the root anyway.
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import breadth_first_order

    graph = csr_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    order, pred = breadth_first_order(graph, root, directed=False, return_predecessors=True)
    if len(order) != n:
        raise InvalidSkeletonError(f"the skeleton service's skeleton of {root_id} is not one tree "
                                   f"({n - len(order)} of {n} vertices unreachable from its root)")
    parents = np.where(pred >= 0, pred, -1).astype(np.int64)
    parents[root] = -1
    compartment = np.asarray(data.get("compartment", np.full(n, 3)), dtype=np.int64).reshape(-1)
    types = np.where(compartment == 2, AXON, BASAL)
    types[root] = SOMA
    meta = data.get("meta") or {}
    soma_radius = meta.get("soma_radius") if isinstance(meta, dict) else None
    radius = np.where(np.isfinite(radius) & (radius > 0), radius, 1.0)
    if soma_radius:
        radius[root] = float(soma_radius)
    skeleton = Skeleton(vertices, parents, np.maximum(radius, 1.0), types, "nm")
    return _service_skeleton(skeleton, root_id, data.get("skeleton_version"), note).sorted()


def _service_skeleton(skeleton, root_id, skeleton_version, note: str):
    """The provenance of a skeleton service skeleton: its step record and compartments."""
    compartments = {"method": "CAVE skeleton service", "axon": bool((skeleton.types == 2).any())}
    if not compartments["axon"]:
        compartments["reason"] = "the CAVE skeleton service labelled no axon"
    skeleton.metadata.update({"root_id": str(root_id) if root_id is not None else None, "compartments": compartments})
    skeleton.metadata["steps"] = [{"step": "skeletonize", "method": "CAVE skeleton service", "note": note,
                                   "skeleton_version": skeleton_version, "units": "nm",
                                   "soma_radius": float(skeleton.radii[skeleton.root]), "compartments": compartments}]
    return skeleton


def service_skeleton(request: CaveRequest, root_id: int, skeleton_version: int = SKELETON_VERSION) -> Lookup:
    """The skeleton service's skeleton of ``root_id`` as a Skeleton (nm), or None with why."""

    def fetch() -> Lookup:
        client = request.client()
        try:
            data = request._call(lambda: client.skeleton.get_skeleton(int(root_id), skeleton_version=skeleton_version,
                                                                       output_format="dict"),
                                 f"skeleton of {root_id}")
        except NotFoundError:
            return _fallback(f"the skeleton service has no skeleton of {root_id} (404)")
        except MeshExportError as exc:
            return _fallback(f"the skeleton service failed ({exc})")
        except Exception as exc:  # caveclient's own refusals: no L2 cache, not a root id
            return _fallback(f"the skeleton service cannot be used ({type(exc).__name__}: {exc})")
        data = dict(data)
        data["skeleton_version"] = skeleton_version
        note = f"CAVE skeleton service, skeleton version {skeleton_version}"
        return Lookup(skeleton_from_dict(data, root_id, note), note, details={"definite": True})

    def encode(found: Lookup):
        sk = found.value
        packed = np.column_stack([sk.nodes, sk.radii])
        return packed, np.column_stack([sk.parents, sk.types]).astype(np.int32), {"skeleton_version": skeleton_version}

    def decode(entry) -> Lookup:
        from mesh_export.model import Skeleton

        packed = entry.vertices.astype(np.float64)
        links = entry.faces.astype(np.int64)
        sk = Skeleton(packed[:, :3], links[:, 0], packed[:, 3], links[:, 1], "nm")
        note = entry.meta.get("note", "")
        return Lookup(_service_skeleton(sk, root_id, entry.meta.get("skeleton_version"), note), note)

    return _cached(request, f"cave-skeleton-v{skeleton_version}", root_id, fetch, encode, decode)

