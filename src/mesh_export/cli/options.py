"""Every option that more than one command takes, declared once.

An option is a typer ``Annotated`` alias: its flag, type, help and help panel. A command that
words an option its own way, or shows it in another panel, takes a ``variant`` of it, so the
flag and its parsing still live here. Options that commands take as a block (the processing
steps of export and convert; where info, preview and compare fetch a root id from) are an
``OptionGroup``: the command names the group as one parameter's default, and
``with_option_groups`` lays the group's options out in that place for typer.
"""

from __future__ import annotations

import copy
import functools
import inspect
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional, get_args

import typer

if TYPE_CHECKING:
    from mesh_export.api import StepOptions, SynapseOptions

STEPS_PANEL = "Processing steps (applied in this order)"
MORPHOLOGY_PANEL = "Morphologies (swc, hoc, neuroml)"
VOLUME_PANEL = "Volume meshes (msh, vtu, xdmf, mesh, ...)"
ROOT_ID_PANEL = "Where meshes come from (root ids)"

_UNCHANGED: Any = object()


def variant(option, *, help: str = _UNCHANGED, panel: str | None = _UNCHANGED):
    """``option`` as one command shows it: in its own words, or in another help panel (None: the
    command's plain "Options" panel)."""
    kind, info = get_args(option)
    info = copy.copy(info)
    if help is not _UNCHANGED:
        info.help = help
    if panel is not _UNCHANGED:
        info.rich_help_panel = panel
    return Annotated[kind, info]


class OptionGroup:
    """Options that several commands take together, in one order, with their defaults.

    ``collect`` turns their values (keyword arguments named after the options) into what the
    command's parameter receives."""

    def __init__(self, collect: Callable[..., Any], **options: tuple[Any, Any]) -> None:
        self.collect = collect
        self.options = options  # name -> (annotation, default)

    def parameters(self, kind) -> list[inspect.Parameter]:
        return [inspect.Parameter(name, kind, annotation=annotation, default=default)
                for name, (annotation, default) in self.options.items()]


def with_option_groups(command: Callable[..., Any]) -> Callable[..., Any]:
    """The command as typer should see it: each parameter whose default is an OptionGroup is
    replaced, in place, by the group's options (the order typer lists them in its help)."""
    signature = inspect.signature(command, eval_str=True)
    groups = {name: p.default for name, p in signature.parameters.items() if isinstance(p.default, OptionGroup)}
    parameters: list[inspect.Parameter] = []
    for name, parameter in signature.parameters.items():
        parameters += groups[name].parameters(parameter.kind) if name in groups else [parameter]

    @functools.wraps(command)
    def run(**values: Any) -> Any:
        for name, group in groups.items():
            values[name] = group.collect(**{option: values.pop(option) for option in group.options})
        return command(**values)

    run.__signature__ = inspect.Signature(parameters)
    run.__annotations__ = {p.name: p.annotation for p in parameters}
    return run


# --------------------------------------------------------------- input, output, printing

TargetArg = Annotated[str, typer.Argument(help="A root id, or a mesh or SWC file.")]
FormatOpt = Annotated[Optional[str], typer.Option("--format", "-f", help="Output format name (see `mesh-export formats`).")]
UnitsInOpt = Annotated[Optional[str], typer.Option("--units-in", help="Units of a file that does not say (nm, um, mm, cm, m, in, ft).")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")]
AsciiOpt = Annotated[bool, typer.Option("--ascii", help="Write the ASCII variant of a binary format (stl, ply, vtk).")]
CompressOpt = Annotated[bool, typer.Option("--compress", help="zlib-compress (vtp, vtu).")]
TemplateOpt = Annotated[Optional[str], typer.Option(
    "--template", help="hoc: the template's name [default: Cell_<root id>, else Cell_<file name>].")]
LodsOpt = Annotated[Optional[int], typer.Option(
    "--lods", help="--format precomputed: levels of detail of the multi-resolution mesh (quadric decimation) [default: 4].")]
LegacyOpt = Annotated[bool, typer.Option(
    "--legacy", help="--format precomputed: legacy unsharded meshes (one fragment per id), not multi-resolution.")]


def layer_options(lods: int | None, legacy: bool):
    """--lods / --legacy as the precomputed writer's ``layers`` option (None when neither is
    given, so other formats see no option they do not take)."""
    if lods is None and not legacy:
        return None
    from mesh_export.api import LayerOptions

    return LayerOptions(lods=lods if lods is not None else LayerOptions.lods, legacy=legacy)


JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
BareJsonOpt = variant(JsonOpt, help="Print JSON.")
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")]
LodOpt = Annotated[Optional[int], typer.Option("--lod", help="Level of detail (root ids on multi-resolution sources).")]
ViewsOpt = Annotated[str, typer.Option("--views", help="Comma-separated views: xy, xz, yz, iso.")]
SizeOpt = Annotated[str, typer.Option("--size", help="Picture size WIDTHxHEIGHT in pixels.")]

# --------------------------------------------------------------- where root ids are fetched from

DatastackOpt = Annotated[Optional[str], typer.Option("--datastack", help="CAVE datastack (see `mesh-export datastacks`) [default: minnie65_public].", rich_help_panel=ROOT_ID_PANEL)]
VersionOpt = Annotated[Optional[int], typer.Option("--version", help="Materialization version to pin; with --static, the release to use.", rich_help_panel=ROOT_ID_PANEL)]
ServerOpt = Annotated[Optional[str], typer.Option("--server", help="CAVE server URL [default: the datastack's own].", rich_help_panel=ROOT_ID_PANEL)]
SourceOpt = Annotated[Optional[str], typer.Option("--source", help="Mesh source URL or 'sample' (as for export).", rich_help_panel=ROOT_ID_PANEL)]
StaticOpt = Annotated[bool, typer.Option("--static", help="The datastack's static multi-resolution meshes (--version's release, else the newest).", rich_help_panel=ROOT_ID_PANEL)]
TokenOpt = Annotated[Optional[str], typer.Option("--token", help="CAVE token [default: $CAVE_TOKEN, then caveclient's secret file].", rich_help_panel=ROOT_ID_PANEL)]
CacheDirOpt = Annotated[Optional[Path], typer.Option("--cache-dir", help="Cache directory [default: $MESH_EXPORT_CACHE or the platform cache dir].", rich_help_panel=ROOT_ID_PANEL)]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the cache.", rich_help_panel=ROOT_ID_PANEL)]
OfflineOpt = Annotated[bool, typer.Option("--offline", help="Serve from the cache only; never touch the network.", rich_help_panel=ROOT_ID_PANEL)]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds to keep retrying transient failures.", rich_help_panel=ROOT_ID_PANEL)]


def _fetch_keywords(*, no_cache: bool, **options: Any) -> dict[str, Any]:
    return {**options, "use_cache": not no_cache}


# info, preview, compare: the keyword arguments of look.info.load_target that fetch a root id.
FETCH_OPTIONS = OptionGroup(
    _fetch_keywords,
    datastack=(DatastackOpt, None), version=(VersionOpt, None), server=(ServerOpt, None),
    source=(SourceOpt, None), static=(StaticOpt, False), token=(TokenOpt, None),
    cache_dir=(CacheDirOpt, None), no_cache=(NoCacheOpt, False), offline=(OfflineOpt, False),
    timeout=(TimeoutOpt, 120.0),
)

# --------------------------------------------------------------- processing steps

MaxMemoryOpt = Annotated[Optional[str], typer.Option("--max-memory", help="Memory budget for remeshing, e.g. 2GB [default: 2GB].", rich_help_panel=STEPS_PANEL)]
PrintOpt = Annotated[Optional[str], typer.Option("--print", help="Print-ready: one watertight body, longest side SIZE (e.g. 120mm), mm, on z=0.", rich_help_panel=STEPS_PANEL)]
MinFeatureOpt = Annotated[Optional[str], typer.Option("--min-feature", help="Thinnest part at print size [default: 0.8mm].", rich_help_panel=STEPS_PANEL)]


@dataclass(frozen=True)
class StepFlags:
    """What the processing-step flags of a command ask for, as given on the command line."""

    values: dict[str, Any]  # one per StepOptions field, named after it
    check: bool
    allow_units: bool

    def step_options(self) -> StepOptions:
        """The steps to apply; a malformed --soma fails here, where the command asks for them."""
        from mesh_export.core.parsing import parse_point
        from mesh_export.api import StepOptions

        values = {f.name: self.values[f.name] for f in fields(StepOptions)}
        return StepOptions(**{**values, "soma": parse_point(values["soma"])})


def _step_flags(*, check: bool, allow_units: bool, **values: Any) -> StepFlags:
    return StepFlags(values, check=check, allow_units=allow_units)


# export, convert. Each StepOptions field is the option of its name (StepFlags.step_options).
STEP_FLAGS = OptionGroup(
    _step_flags,
    largest_component=(Annotated[bool, typer.Option("--largest-component", help="Keep only the largest connected piece.", rich_help_panel=STEPS_PANEL)], False),
    min_component_faces=(Annotated[Optional[int], typer.Option("--min-component-faces", help="Drop pieces with fewer faces.", rich_help_panel=STEPS_PANEL)], None),
    repair=(Annotated[bool, typer.Option("--repair", help="Merge duplicate vertices, drop degenerate/duplicate faces, fix winding, fill small holes.", rich_help_panel=STEPS_PANEL)], False),
    units=(Annotated[Optional[str], typer.Option("--units", help="Convert coordinates to these units (nm, um, mm).", rich_help_panel=STEPS_PANEL)], None),
    scale=(Annotated[Optional[float], typer.Option("--scale", help="Multiply coordinates by this factor (after --units).", rich_help_panel=STEPS_PANEL)], None),
    watertight=(Annotated[bool, typer.Option("--watertight", help="Closed, manifold, single-shell surface by voxel remeshing.", rich_help_panel=STEPS_PANEL)], False),
    pitch=(Annotated[Optional[float], typer.Option("--pitch", help="Voxel size for --watertight (and the rebuild --volume makes of an open surface), in output units [default: longest side / 384].", rich_help_panel=STEPS_PANEL)], None),
    max_memory=(MaxMemoryOpt, None),
    print_size=(PrintOpt, None),
    min_feature=(MinFeatureOpt, None),
    keep_orientation=(Annotated[bool, typer.Option("--keep-orientation", help="--print: keep the cell's orientation instead of standing it on its most stable pose.", rich_help_panel=STEPS_PANEL)], False),
    base=(Annotated[bool, typer.Option("--base", help="--print: a 1 mm plate under the lowest part, for a larger first layer.", rich_help_panel=STEPS_PANEL)], False),
    simplify=(Annotated[Optional[float], typer.Option("--simplify", help="Decimate to this fraction of the faces (0-1].", rich_help_panel=STEPS_PANEL)], None),
    faces=(Annotated[Optional[int], typer.Option("--faces", help="Decimate to this many faces.", rich_help_panel=STEPS_PANEL)], None),
    smooth=(Annotated[Optional[int], typer.Option("--smooth", help="Taubin smoothing iterations.", rich_help_panel=STEPS_PANEL)], None),
    center=(Annotated[bool, typer.Option("--center", help="Move the bounding-box centre to the origin.", rich_help_panel=STEPS_PANEL)], False),
    check=(Annotated[bool, typer.Option("--check", help="Check the result (watertight, bodies, size, thinnest feature); fail if --print requirements are not met.", rich_help_panel=STEPS_PANEL)], False),
    skeletonize=(Annotated[bool, typer.Option("--skeletonize", help="Turn the mesh into a morphology (automatic for swc, hoc, neuroml).", rich_help_panel=MORPHOLOGY_PANEL)], False),
    soma=(Annotated[Optional[str], typer.Option("--soma", help="Soma position X,Y,Z in nm; auto: the nucleus from a CAVE datastack's soma table, else found on the mesh (default); mesh: always found on the mesh.", rich_help_panel=MORPHOLOGY_PANEL)], None),
    heal=(Annotated[bool, typer.Option("--heal/--no-heal", help="Join disconnected pieces into the tree (or drop them).", rich_help_panel=MORPHOLOGY_PANEL)], True),
    skeleton_source=(Annotated[str, typer.Option("--skeleton-source", help="mesh: skeletonize the mesh; cave: the CAVE skeleton service's skeleton (falls back to the mesh).", rich_help_panel=MORPHOLOGY_PANEL)], "mesh"),
    synapses=(Annotated[bool, typer.Option("--synapses/--no-synapses", help="The cell's synapses (a CAVE datastack's synapse table, or --synapses-file): tell the axon (type 2) from the dendrites, and map them onto the morphology in <file>.synapses.csv.", rich_help_panel=MORPHOLOGY_PANEL)], True),
    compartments=(Annotated[bool, typer.Option("--compartments", help="Label a surface's faces by its morphology's compartments (soma, axon, basal, apical) and path distance from the soma, and draw its synapses as points: glTF parts and materials, VTP/VTU cell data, a PLY face property, OBJ groups with a .mtl.", rich_help_panel=MORPHOLOGY_PANEL)], False),
    allow_units=(Annotated[bool, typer.Option("--allow-units", help="Let a morphology be written in units other than um (NEURON expects um).", rich_help_panel=MORPHOLOGY_PANEL)], False),
    volume=(Annotated[bool, typer.Option("--volume", help="Tetrahedral mesh of the inside for FEM solvers (TetGen; the 'volume' extra).", rich_help_panel=VOLUME_PANEL)], False),
    max_tet_volume=(Annotated[Optional[float], typer.Option("--max-tet-volume", help="Largest tetrahedron volume, in output units cubed.", rich_help_panel=VOLUME_PANEL)], None),
)


# --------------------------------------------------------------- synapses (export, convert)


@dataclass(frozen=True)
class SynapseFlags:
    """Where a morphology's synapses come from and how their table is written, as given."""

    synapses_file: Path | None
    synapse_resolution: str | None
    synapses_format: str
    synapse_hoc: bool = False

    def synapse_options(self, root_id: str | None = None) -> SynapseOptions | None:
        """The options asked for; None when none was given (the defaults: an export's request,
        which a batch re-run compares, stays as it was before these options existed)."""
        from mesh_export.api import SynapseOptions

        given = (self.synapses_file, self.synapse_resolution, root_id)
        if all(value is None for value in given) and self.synapses_format == "csv" and not self.synapse_hoc:
            return None
        return SynapseOptions(file=self.synapses_file, resolution=self.synapse_resolution,
                              format=self.synapses_format, root_id=root_id, hoc=self.synapse_hoc)


SYNAPSE_FLAGS = OptionGroup(
    lambda **values: SynapseFlags(**values),
    synapses_file=(Annotated[Optional[Path], typer.Option("--synapses-file", help="The cell's synapses from a CSV, TSV or Parquet file with CAVE's columns (id, pre_pt_root_id, post_pt_root_id, size, ctr_pt_position as [x, y, z] or _x/_y/_z) instead of the datastack's table.", rich_help_panel=MORPHOLOGY_PANEL)], None),
    synapse_resolution=(Annotated[Optional[str], typer.Option("--synapse-resolution", help="The synapse file's positions are voxels of X,Y,Z nm (e.g. 4,4,40); without it they are nm.", rich_help_panel=MORPHOLOGY_PANEL)], None),
    synapses_format=(Annotated[str, typer.Option("--synapses-format", help="The synapse table beside a morphology: csv or parquet.", rich_help_panel=MORPHOLOGY_PANEL)], "csv"),
    synapse_hoc=(Annotated[bool, typer.Option("--synapse-hoc", help="Also write <file>.synapses.hoc beside an swc or hoc output: a template that puts an Exp2Syn at each input synapse (its table's section and x) of a cell loaded in NEURON, with a NetStim per partner to drive them.", rich_help_panel=MORPHOLOGY_PANEL)], False),
)
