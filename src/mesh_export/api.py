"""The Python API; the CLI is a thin layer over these functions.

Every function here is what one ``mesh-export`` command does, for a script or a notebook:
``export`` (one root id), ``export_many`` (a resumable batch), ``export_plate`` (build plates),
``info``, ``preview``, ``neuroglancer_url`` (link), ``compare``, ``check``, the cache and
token helpers, ``datastacks``; and ``load``, ``write``, ``formats``, ``convert`` for files.
The types they take or return (``StepOptions``, ``SynapseOptions``, ``ExportResult``,
``BatchResult``, ``Token``, ``MeshCache``) and ``TOKEN_HELP`` are re-exported. Every import is function-local (the
re-exports are looked up on first use), so ``import mesh_export.api`` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from mesh_export.jobs.batch import BatchResult
    from mesh_export.jobs.circuit import CircuitOptions, CircuitResult
    from mesh_export.jobs.export import ExportResult
    from mesh_export.look.compare import Comparison
    from mesh_export.look.preview import Preview
    from mesh_export.jobs.synapses import SynapseOptions
    from mesh_export.process.steps import StepOptions
    from mesh_export.retrieve.auth import TOKEN_HELP, Token
    from mesh_export.retrieve.cache import MeshCache
    from mesh_export.writers.readers import load

__all__ = [
    # files
    "load", "write", "formats", "convert", "output_counts", "check",
    # root ids
    "export", "export_many", "read_ids", "export_plate",
    # many root ids into one circuit, or into one scene to look at
    "export_circuit", "build_circuit", "writes_circuit", "export_scene", "read_colors",
    # looking before exporting
    "info", "format_info", "preview", "neuroglancer_url", "compare", "layers_link", "serve_layers",
    # the cache, the token, the datastacks
    "cache_info", "cache_clear", "cache_prune", "resolve_token", "redact", "TOKEN_HELP",
    "datastacks", "datastacks_config_path",
    # types
    "StepOptions", "SynapseOptions", "ExportResult", "BatchResult", "Token", "MeshCache",
    "CircuitOptions", "CircuitResult", "CellFiles", "Biophysics", "LayerOptions", "SceneOptions", "SceneResult",
]


def __getattr__(name: str):
    # The re-exports, imported on first use only (later lookups find them in globals()).
    if name == "load":
        from mesh_export.writers.readers import load as value
    elif name == "StepOptions":
        from mesh_export.process.steps import StepOptions as value
    elif name == "SynapseOptions":
        from mesh_export.jobs.synapses import SynapseOptions as value
    elif name == "ExportResult":
        from mesh_export.jobs.export import ExportResult as value
    elif name == "BatchResult":
        from mesh_export.jobs.batch import BatchResult as value
    elif name in ("CircuitOptions", "CircuitResult", "CellFiles"):
        from mesh_export.jobs import circuit

        value = getattr(circuit, name)
    elif name in ("SceneOptions", "SceneResult"):
        from mesh_export.jobs import scene

        value = getattr(scene, name)
    elif name == "Biophysics":
        from mesh_export.writers.sonata import Biophysics as value
    elif name == "LayerOptions":
        from mesh_export.writers.precomputed import LayerOptions as value
    elif name == "Token":
        from mesh_export.retrieve.auth import Token as value
    elif name == "TOKEN_HELP":
        from mesh_export.retrieve.auth import TOKEN_HELP as value
    elif name == "MeshCache":
        from mesh_export.retrieve.cache import MeshCache as value
    else:
        raise AttributeError(f"module 'mesh_export.api' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


# --------------------------------------------------------------------------- files

def write(mesh, path: str | os.PathLike, format: str | None = None, overwrite: bool = False,
          **options: Any) -> Path:
    """Write ``mesh`` (a trimesh.Trimesh, or a mesh_export.model.Skeleton for morphology
    formats) to ``path``; the format from ``format`` or the extension. A surface mesh written
    to a morphology format (swc, hoc, neuroml) is skeletonized first with default settings.

    The file appears under its name only once complete; an existing file is replaced only
    with ``overwrite=True``. Returns the path written.
    """
    from mesh_export.core.options import check_options
    from mesh_export.process.skeleton import skeleton_for_writer
    from mesh_export.writers import output
    from mesh_export.writers.catalog import writer_for_path

    writer = writer_for_path(path, format)
    options = check_options(writer, options)  # a bad option fails before a skeletonization
    return output.write(skeleton_for_writer(mesh, writer), path, format, overwrite, **options)


def formats() -> list[dict[str, Any]]:
    """Every registered writer: name, extensions, what it accepts, modes, options."""
    from mesh_export.writers.catalog import all_writers

    return [writer.describe() for writer in all_writers()]


def convert(source: str | os.PathLike, target: str | os.PathLike, format: str | None = None,
            units_in: str | None = None, units: str | None = None, scale: float | None = None,
            overwrite: bool = False, steps=None, return_mesh: bool = False, synapses=None, **options: Any):
    """Read ``source``, apply ``steps`` (a ``StepOptions``; ``units``/``scale`` are shortcuts),
    write ``target``. Returns the path written (and the mesh written, with ``return_mesh``: a
    trimesh.Trimesh, or without steps to a binary native format the arrays as read, in an
    ``export.CachedSurface``; a Skeleton for an SWC ``source``).

    An SWC ``source`` (any SWC: see :func:`mesh_export.model.read_swc` for what is read, repaired
    or refused) converts to a morphology format (swc, hoc, neuroml); what reading it repaired
    is in the output's header and in the returned skeleton's ``metadata["repairs"]``.
    ``synapses``: a ``SynapseOptions`` with a synapse ``file`` (and the ``root_id`` whose they
    are) to map onto a morphology (a skeletonized mesh or an SWC); their table is written beside
    it (``<target>.synapses.csv``; its record in the skeleton's ``metadata["synapse_table"]``)."""
    from mesh_export.core.atomic import check_target
    from mesh_export.jobs.export import units_for_writer
    from mesh_export.model import CachedSurface
    from mesh_export.writers.catalog import writer_for_path
    from mesh_export.model import VOLUME, kind_of
    from mesh_export.writers.readers import boundary_surface, is_morphology_file, read_any, to_trimesh
    from mesh_export.process.steps import apply_steps, make_morphology, plan_for_writer

    writer = writer_for_path(target, format)  # fail on a bad format before reading anything
    from mesh_export.jobs.layers import writes_layers

    if writes_layers(writer):
        return _convert_to_layers(source, target, writer, units_in, units, scale, overwrite, steps, return_mesh,
                                  synapses, options)
    if is_morphology_file(source):
        return _convert_morphology(source, target, writer, units_in, units, scale, overwrite, steps,
                                   return_mesh, synapses, options)
    steps, options = plan_for_writer(steps, writer, options, units=units, scale=scale)
    check_target(target, overwrite)
    if writer.name == "obj" and steps.compartments:  # the material library beside it obeys --overwrite too
        check_target(Path(target).with_suffix(".mtl"), overwrite)
    table_format = None
    if synapses is not None:
        synapses.check_steps(steps, writer.name)
    if steps.skeletonize and synapses is not None:
        synapses = synapses.checked()
        if synapses.source_for(steps, from_datastack=False) == "file":
            table_format = synapses.format
            for companion in synapses.outputs(target):
                check_target(companion, overwrite)
    data = read_any(source, units=units_in)
    if kind_of(data) == VOLUME:
        if VOLUME in writer.accepts:
            return _convert_volume(data, source, target, writer, steps, overwrite, return_mesh, options)
        data = boundary_surface(data)
    vertices, faces, metadata = data.vertices, data.faces, data.metadata
    # As for a cached mesh: a binary native writer takes the arrays as read (float32/int32);
    # a trimesh.Trimesh would widen both to 64 bits only for the writer to narrow them again.
    if writer.checks_values and not options.get("ascii") and not steps.changes_mesh():
        mesh = CachedSurface(vertices, faces, metadata)
    elif steps.skeletonize or steps.compartments:
        from mesh_export.jobs.synapses import check_landed, morphology_answers

        answers = morphology_answers(steps, synapses, no_cave_reason="a file, not a CAVE datastack's root id; "
                                                                     "give --synapses-file")
        if steps.skeletonize:
            mesh = make_morphology(to_trimesh(vertices, faces, metadata), steps, answers)
            check_landed(mesh, synapses)
        else:  # the surface, its faces labelled by its morphology (--compartments)
            from mesh_export.process.steps import make_labelled_surface

            mesh = units_for_writer(make_labelled_surface(to_trimesh(vertices, faces, metadata), steps, answers),
                                    writer)
    else:
        # Repair, remeshing and printing (and every step ORDER puts before them) work on the
        # arrays as read: a Trimesh would first widen a 9M-face mesh's to float64 / int64.
        on_arrays = steps.repair or steps.watertight or steps.print_size is not None
        mesh = CachedSurface(vertices, faces, metadata) if on_arrays else to_trimesh(vertices, faces, metadata)
        mesh = units_for_writer(apply_steps(mesh, steps), writer)
    written = write(mesh, target, format=writer.name, overwrite=overwrite, **options)
    if table_format:
        from mesh_export.jobs.synapses import write_table

        mesh.metadata["synapse_table"] = write_table(mesh, written, synapses, units=options.get("units"),
                                                     overwrite=overwrite, template=options.get("template"))
    return (written, mesh) if return_mesh else written


def _convert_volume(mesh, source, target, writer, steps, overwrite, return_mesh, options):
    """A volume mesh file to a format that holds volumes: written as read (linear cells)."""
    from mesh_export.errors import InvalidArgumentError

    if steps.changes_mesh():
        raise InvalidArgumentError(f"{source} is a volume mesh: processing steps, --units and --scale apply "
                                   "to surfaces (write it to a surface format to process its boundary)")
    written = write(mesh, target, format=writer.name, overwrite=overwrite, **options)
    return (written, mesh) if return_mesh else written


def _convert_to_layers(source, target, writer, units_in, units, scale, overwrite, steps, return_mesh, synapses,
                       options):
    """A surface file added to the Neuroglancer layers in ``target`` as the cell ``synapses.root_id``
    (``--root-id``): its surface after the steps, and with --skeletonize its morphology and synapses."""
    from mesh_export.core.parsing import parse_root_id
    from mesh_export.core.units import conversion_factor
    from mesh_export.errors import InvalidArgumentError
    from mesh_export.jobs.layers import add_cell, check_layers_target
    from mesh_export.jobs.provenance import export_request
    from mesh_export.model import CachedSurface
    from mesh_export.process.steps import apply_steps, plan_for_writer, surface_and_morphology
    from mesh_export.writers.readers import is_morphology_file, read_surface, to_trimesh

    if synapses is None or synapses.root_id is None:
        raise InvalidArgumentError("--format precomputed needs --root-id: the id the cell has in the layers")
    if is_morphology_file(source):
        raise InvalidArgumentError(f"{source} is a morphology (SWC); precomputed layers start from a surface mesh")
    if units or scale is not None or (steps is not None and (steps.center or steps.units or steps.scale is not None)):
        raise InvalidArgumentError("precomputed layers lie on the dataset, in nm: --units, --scale and --center "
                                   "would move them off it")
    root_id = parse_root_id(synapses.root_id)
    steps, options = plan_for_writer(steps, writer, options)
    target = check_layers_target(target, root_id, options, overwrite)
    if synapses.file is not None:
        synapses = synapses.checked()
        synapses.check_steps(steps, writer.name)
    vertices, faces, metadata = read_surface(source, units=units_in)
    read_units = metadata.get("units") or "nm"  # connectomics files are nm unless they say otherwise
    if read_units != "nm":
        vertices = (vertices * conversion_factor(read_units, "nm")).astype(vertices.dtype)
    metadata["units"] = "nm"
    skeleton = None
    if steps.skeletonize:
        from mesh_export.jobs.synapses import check_landed, morphology_answers

        answers = morphology_answers(steps, synapses, no_cave_reason="a file, not a CAVE datastack's root id; "
                                                                     "give --synapses-file")
        surface, skeleton = surface_and_morphology(to_trimesh(vertices, faces, metadata), steps, answers)
        check_landed(skeleton, synapses)
    elif steps.changes_mesh():
        surface = apply_steps(to_trimesh(vertices, faces, metadata), steps)
    else:
        surface = CachedSurface(vertices, faces, metadata)
    request = export_request(root_id, format=writer.name, steps=steps, synapses=synapses, **options)
    request["source_file"] = str(source)
    add_cell(surface, skeleton, root_id=root_id, out_dir=target, options=options, overwrite=overwrite,
             datastack=None, version=None, source=str(source), request=request)
    return (target, surface) if return_mesh else target


def _convert_morphology(source, target, writer, units_in, units, scale, overwrite, steps, return_mesh, synapses,
                        options):
    """An SWC file to a morphology format: read (repairs recorded), validated, written; a synapse
    file's rows mapped onto it and written beside it as for a skeletonized mesh."""
    from mesh_export.core.atomic import check_target
    from mesh_export.core.options import check_options
    from mesh_export.errors import InvalidArgumentError
    from mesh_export.model import SKELETON
    from mesh_export.writers.readers import load

    if SKELETON not in writer.accepts:
        raise InvalidArgumentError(f"{source} is a morphology (SWC or NeuroML): it converts to swc, hoc or neuroml, "
                                   f"not {writer.name}")
    if scale is not None or (steps is not None and steps.changes_mesh()):
        raise InvalidArgumentError("processing steps and --scale apply to surface meshes, not to an SWC morphology")
    if units:
        options = {**options, "units": units}
    options = check_options(writer, options)
    check_target(target, overwrite)
    table_format = None
    if synapses is not None and (synapses.file is not None or synapses.hoc):
        synapses = synapses.checked()
        synapses.check_steps(None, writer.name)
        synapses.source_for(None, from_datastack=False)  # --synapse-hoc without a file: refused
        table_format = synapses.format
        for companion in synapses.outputs(target):
            check_target(companion, overwrite)
    skeleton = load(source, units=units_in)
    if table_format:
        from mesh_export.jobs.synapses import attach_file_synapses, check_landed

        skeleton = attach_file_synapses(skeleton, synapses)
        check_landed(skeleton, synapses)
    written = write(skeleton, target, format=writer.name, overwrite=overwrite, **options)
    if table_format:
        from mesh_export.jobs.synapses import write_table

        skeleton.metadata["synapse_table"] = write_table(skeleton, written, synapses, units=options.get("units"),
                                                         overwrite=overwrite, template=options.get("template"))
    return (written, skeleton) if return_mesh else written


def output_counts(mesh, options: dict[str, Any]) -> dict[str, Any]:
    """The size facts of a mesh (or skeleton, or volume) as written with ``options``: what an
    export's sidecar and ``convert --json`` record (faces or nodes, vertices, ...)."""
    from mesh_export.jobs.provenance import output_counts as counts

    return counts(mesh, options)


def check(mesh, *, size: str | None = None, min_feature: str | None = None, max_memory: str | int | None = None,
          units: str | None = None) -> dict[str, Any]:
    """Is ``mesh`` (a mesh file, read as :func:`load` reads it with ``units``, or a loaded mesh)
    printable: watertight, manifold, bodies, volume, bbox and, with ``size`` (the longest side,
    e.g. ``"120mm"``) or ``min_feature``, the thinnest feature. ``report["failures"]`` lists
    what fails (empty: printable); nothing is raised for them."""
    from mesh_export.process.check import check_mesh

    if isinstance(mesh, (str, os.PathLike)):
        from mesh_export.writers.readers import load

        mesh = load(mesh, units=units)
    return check_mesh(mesh, size=size, min_feature=min_feature, max_memory=max_memory)


# --------------------------------------------------------------------------- root ids

def export(root_id: int | str, **options: Any) -> ExportResult:
    """Export one root id to a file: fetch it through the verified cache, apply the steps,
    write it (and its ``<file>.json`` provenance sidecar). Returns an ``ExportResult``
    (``.summary()``: output, faces or nodes, lod, cache state ...).

    Keywords, as the ``mesh-export export`` options: ``format`` ("stl"), ``out_dir``, ``name``
    (the file name template), ``datastack``, ``version``, ``server``, ``source``, ``static``,
    ``lod``, ``token``, ``cache_dir``, ``use_cache``, ``offline``, ``allow_missing``,
    ``timeout``, ``steps`` (a ``StepOptions``), ``check``, ``overwrite``, ``sidecar``,
    ``preview``, ``progress`` and the writer's options (``ascii``, ``compress``, ...).
    """
    from mesh_export.jobs.export import export as export_one

    return export_one(root_id, **options)


def limit_connections(connections: int | None) -> None:
    """Allow at most ``connections`` requests in flight at once, all fetches of this process and
    of the worker processes it starts together (``--max-connections``; over HTTP/1.1 each is a
    connection). None: the default (1024, or ``$MESH_EXPORT_MAX_CONNECTIONS``), always kept
    under the open-file limit."""
    from mesh_export.errors import InvalidArgumentError
    from mesh_export.retrieve.politeness import MAX_CONNECTIONS_ENV, set_max_connections

    if connections is not None:
        if connections < 1:
            raise InvalidArgumentError(f"--max-connections must be 1 or more, got {connections}")
        os.environ[MAX_CONNECTIONS_ENV] = str(connections)  # Dask workers started from here read it
    set_max_connections(connections)


def export_many(root_ids: Iterable[int | str], **options: Any) -> BatchResult:
    """Export many root ids, resumably (a manifest; ids already exported by the same request
    are skipped); one failed id never stops the others. Returns a ``BatchResult``
    (``exit_code``, ``records``, ``summary_table()``).

    Keywords: ``workers``, ``executor`` ("local", "dask", "dask-local"), ``scheduler``,
    ``client``, ``manifest``, ``fail_fast``, ``max_requests_per_second``, ``progress``,
    ``on_record`` (called with each id's record as it finishes); every other one as for
    :func:`export`.
    """
    from mesh_export.jobs.batch import export_many as run

    return run(root_ids, **options)


def export_scene(root_ids: Iterable[int | str], **options: Any):
    """Write many root ids into ONE file to look at (``scene``: a ``SceneOptions``, NAME.glb,
    .gltf or .vtm): a node per cell named by its root id, each in its colour, its compartments
    and synapses with ``steps.compartments``. Failed ids are reported (``failed``) and the
    scene holds the rest. Keywords as for :func:`export`, and ``workers``. Returns a
    ``SceneResult`` (``output``, ``cells``, ``failed``, ``exit_code``)."""
    from mesh_export.jobs.scene import export_scene as run

    return run(root_ids, **options)


def read_colors(ids_file, id_column: str | None = None) -> dict[str, str]:
    """Root id -> the ``color`` column of a CSV/TSV/Parquet ids file (empty without one)."""
    from mesh_export.jobs.ids import read_colors as run

    return run(ids_file, id_column)


def writes_circuit(format: str) -> bool:
    """True when ``format`` writes many root ids into one output (``sonata``: a circuit)."""
    from mesh_export.model import CIRCUIT
    from mesh_export.writers.catalog import get_writer

    return CIRCUIT in get_writer(format).accepts


def export_circuit(root_ids: Iterable[int | str], **options: Any) -> CircuitResult:
    """Export many root ids as ONE SONATA circuit directory (``out_dir``) that BMTK's bionet
    runs: each cell exported as an SWC with its synapse table into ``<out_dir>.cells/`` (a
    resumable batch: every keyword of :func:`export_many`), then the circuit written
    atomically. ``circuit``: a ``CircuitOptions`` (weights, input rate, ``Biophysics``).
    Returns a ``CircuitResult`` (``output``, ``exit_code``, ``counts``, ``batch``)."""
    from mesh_export.jobs.circuit import export_circuit as run

    return run(root_ids, **options)


def build_circuit(cells: Iterable[Any], out_dir: str | os.PathLike, circuit: CircuitOptions | None = None,
                  overwrite: bool = False) -> CircuitResult:
    """A SONATA circuit of cells already exported: ``cells`` are ``CellFiles`` (root id, SWC
    file, the synapse table mesh-export wrote beside it)."""
    from mesh_export.jobs.circuit import build_circuit as run

    return run(list(cells), out_dir, circuit, overwrite=overwrite)


def read_ids(args: Iterable[str] = (), ids_file: str | os.PathLike | None = None,
             id_column: str | None = None, stdin=None) -> list[str]:
    """Root ids from ``args`` (``-`` reads ``stdin``, one per line), then ``ids_file``: one per
    line, or a CSV/TSV or Parquet column (``id_column``; default the first of root_id,
    pt_root_id, segment_id, id). Duplicates are dropped, the first kept."""
    from mesh_export.jobs.ids import read_ids as read

    return read(args, ids_file, id_column, stdin)


def export_plate(root_ids: Iterable[int | str], *, plate: str, steps: StepOptions, **options: Any) -> list[dict[str, Any]]:
    """Fetch each root id, apply ``steps`` (which must ask for a print size), and lay all the
    cells out on build plates ``plate`` ("WIDTHxDEPTH", e.g. "250x210mm"): one 3MF (one object
    per id) and one STL per plate. Returns the plate summaries (files, root ids per plate).

    Keywords: ``out_dir``, ``name`` ("plate"), ``same_scale``, ``overwrite`` and where the
    meshes come from, as for :func:`export` (``datastack``, ``source``, ``lod``, ``token``,
    ``cache_dir``, ``use_cache``, ``offline``, ...).
    """
    from mesh_export.jobs.plate import export_plate as run

    return run(root_ids, plate=plate, steps=steps, **options)


# --------------------------------------------------------------------------- looking before exporting

def info(target: str | os.PathLike, **options: Any) -> dict[str, Any]:
    """Figures of a root id (fetched through the cache) or a mesh or SWC file, as a JSON-ready
    dict: counts, bbox, area, volume, watertight, pieces, lods, source, cache.

    Keywords: ``lod``, ``list_lods`` (fetch the other lods to count their faces), ``units``
    (of a file that does not say) and where a root id comes from, as for :func:`export`."""
    from mesh_export.look.info import info as figures

    return figures(target, **options)


def format_info(result: dict[str, Any]) -> str:
    """:func:`info`'s figures as ``mesh-export info`` prints them."""
    from mesh_export.look.info import format_info as text

    return text(result)


def preview(target: str | os.PathLike, out: str | os.PathLike | None = None, **options: Any) -> Preview:
    """Render a root id or a mesh or SWC file to a shaded PNG ``out`` [default: <id or file
    stem>.png], offscreen, with a scale bar in um and a caption. Returns a ``Preview``
    (``.picture``: path, size, um per pixel; ``.summary()``).

    Keywords: ``views`` ("xy"; comma-separated xy, xz, yz, iso), ``size`` ("1200x800"),
    ``lod``, ``caption``, ``overwrite``, ``units`` and where a root id comes from."""
    from mesh_export.look.preview import preview as render

    return render(target, out, **options)


def neuroglancer_url(root_id: int | str, **options: Any) -> str:
    """The URL of a Neuroglancer viewer showing ``root_id`` (the viewer state in the URL).

    Keywords: ``datastack``, ``source``, ``static``, ``server``, ``token``, ``viewer``, ``timeout``."""
    from mesh_export.look.link import neuroglancer_url as url

    return url(root_id, **options)


def layers_link(directory: str | os.PathLike, base_url: str, **options: Any) -> tuple[dict[str, Any], str]:
    """``(state, URL)`` of a Neuroglancer viewer showing the layers written with ``--format precomputed``
    in ``directory`` (read by the viewer at ``base_url``) beside the dataset's segmentation.

    Keywords: ``root_ids`` (default: every id there), ``dataset`` (False: ours only), and where the
    dataset is, as for :func:`neuroglancer_url`."""
    from mesh_export.look.link import layers_link as link

    return link(directory, base_url, **options)


def serve_layers(directory: str | os.PathLike, port: int = 0, host: str = "127.0.0.1"):
    """An HTTP server for ``directory`` with the CORS headers and byte ranges Neuroglancer needs
    (call ``serve_forever()``; ``server_address`` says where; ``shutdown()`` from another thread)."""
    from mesh_export.errors import OutputError
    from mesh_export.look.serve import layers_server

    try:
        return layers_server(directory, port=port, host=host)
    except OSError as exc:
        raise OutputError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None


def compare(a: str | os.PathLike, b: str | os.PathLike, out: str | os.PathLike = "compare.png",
            **options: Any) -> Comparison:
    """Two meshes (root ids or files) side by side in one PNG ``out``, with their counts and
    the Hausdorff distance. Returns a ``Comparison`` (``.summary``, ``.caption``).

    Keywords: ``lod_a``, ``lod_b``, ``views``, ``size``, ``samples``, ``overwrite``, ``units``
    and where root ids come from, as for :func:`export`."""
    from mesh_export.look.compare import compare as side_by_side

    return side_by_side(a, b, out, **options)


# --------------------------------------------------------------------------- cache, token, datastacks

def cache_info(cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The mesh cache: its ``directory``, how many meshes (``entries``) and their ``bytes``."""
    from mesh_export.retrieve.cache import MeshCache

    return MeshCache(cache_dir).info()


def cache_clear(cache_dir: str | os.PathLike | None = None) -> int:
    """Delete every cached mesh; returns how many were removed."""
    from mesh_export.retrieve.cache import MeshCache

    return MeshCache(cache_dir).clear()


def cache_prune(max_size: str | int, cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Drop least recently used meshes until the cache fits in ``max_size`` (bytes, or a size
    such as "2GB"); returns how many were ``removed`` and the ``entries`` and ``bytes`` kept."""
    from mesh_export.core.parsing import parse_byte_size
    from mesh_export.retrieve.cache import MeshCache

    return MeshCache(cache_dir).prune(parse_byte_size(max_size))


def resolve_token(explicit: str | None = None, server: str | None = None) -> Token:
    """The CAVE token that would be used: ``explicit``, else ``$CAVE_TOKEN``, else caveclient's
    secret file (``server``'s own first). A ``Token``: ``value`` (None if there is none),
    ``origin``, ``fingerprint`` (a short hash that identifies it without revealing it)."""
    from mesh_export.retrieve.auth import resolve_token as resolve

    return resolve(explicit, server)


def redact(text: str, token: str | None) -> str:
    """``text`` with ``token`` replaced by ``<token>``."""
    from mesh_export.retrieve.auth import redact as scrub

    return scrub(text, token)


def datastacks() -> list[dict[str, Any]]:
    """The known datastacks (the built-in table with the user's datastacks.toml applied):
    name, CAVE server, static mesh releases, the default release, description."""
    from mesh_export.retrieve.datastacks import registry

    return [entry.describe() for entry in registry().values()]


def datastacks_config_path() -> Path:
    """Where the user's datastacks.toml is read from (it need not exist)."""
    from mesh_export.retrieve.datastacks import config_path

    return config_path()
