"""A morphology's synapses, for export and convert: where they come from (:class:`SynapseOptions`),
what the job looks up before processing (:func:`morphology_answers`: the CAVE tables and services,
or a synapse file), and the table written beside the morphology (:func:`write_table`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mesh_export.errors import InputError, InvalidArgumentError

__all__ = ["SynapseOptions", "morphology_answers", "attach_file_synapses", "check_landed", "write_table", "SOURCES"]

SOURCES = ("auto", "cave", "file", "none")
#: Outputs NEURON builds with Import3d's section names (what ``--synapse-hoc`` places on).
HOC_FORMATS = ("swc", "hoc")


@dataclass
class SynapseOptions:
    """Where a morphology's synapses come from, and how their table is written.

    ``source``: ``auto`` (a file when ``file`` is given, else the datastack's synapse table when
    the mesh came from a CAVE datastack, else none), ``cave``, ``file`` or ``none`` (the CLI's
    ``--no-synapses`` is ``StepOptions.synapses=False``, which wins). ``file``: a CSV, TSV or
    Parquet table with CAVE's column names; ``resolution``: its positions' voxel size in nm
    ("4,4,40"; None: nm). ``root_id``: whose synapses a file holds (inputs ``post_pt_root_id ==
    root_id``), for convert; an export uses the id it exports. ``format``: csv or parquet.
    ``page_rows``: rows per CAVE query (None: :data:`mesh_export.retrieve.cave_tables.PAGE_ROWS`).
    ``hoc``: also write ``<file>.synapses.hoc`` (:mod:`mesh_export.writers.synapse_hoc`: an
    Exp2Syn at each placed input synapse, a NetStim per partner) beside an swc or hoc output.
    """

    source: str = "auto"
    file: str | os.PathLike | None = None
    resolution: Any = None
    root_id: int | str | None = None
    format: str = "csv"
    page_rows: int | None = None
    hoc: bool = False

    def checked(self) -> "SynapseOptions":
        """The options with their values checked (before any download or read)."""
        from mesh_export.core.parsing import parse_root_id
        from mesh_export.retrieve.synapse_files import parse_resolution
        from mesh_export.writers.synapse_table import table_path

        if self.source not in SOURCES:
            raise InvalidArgumentError(f"synapse source is one of {', '.join(SOURCES)}, not {self.source!r}")
        if self.source == "file" and self.file is None:
            raise InvalidArgumentError("synapse source 'file' needs --synapses-file")
        if self.file is not None and self.source in ("cave", "none"):
            raise InvalidArgumentError(f"--synapses-file was given with synapse source {self.source!r}")
        table_path("x", self.format)  # a bad format fails here
        parse_resolution(self.resolution)
        if self.file is not None and not Path(self.file).is_file():
            raise InputError(f"synapse file not found: {self.file}")
        if self.page_rows is not None and int(self.page_rows) < 1:
            raise InvalidArgumentError(f"page_rows must be at least 1, got {self.page_rows}")
        root_id = parse_root_id(self.root_id) if self.root_id is not None else None
        return SynapseOptions(self.source, self.file, self.resolution, root_id, self.format, self.page_rows,
                              bool(self.hoc))

    def check_steps(self, steps, format_name: str | None = None) -> None:
        """Refuse a synapse file for an output that holds no morphology to map it onto, and
        Exp2Syn for one NEURON does not build with Import3d's section names (neuroml, ...)."""
        if (self.file is not None and steps is not None and not steps.skeletonize
                and not getattr(steps, "compartments", False)):
            raise InvalidArgumentError("--synapses-file maps synapses onto a morphology: a morphology format "
                                       "(swc, hoc, neuroml), --skeletonize or --compartments")
        if self.hoc and format_name not in HOC_FORMATS:
            raise InvalidArgumentError(f"--synapse-hoc places Exp2Syn on the sections NEURON builds of an swc or "
                                       f"hoc output, not {format_name or 'this format'}")

    def outputs(self, morphology) -> list[Path]:
        """The files written beside ``morphology``: the table, and the Exp2Syn hoc if asked."""
        from mesh_export.writers.synapse_hoc import synapse_hoc_path
        from mesh_export.writers.synapse_table import table_path

        return [table_path(morphology, self.format)] + ([synapse_hoc_path(morphology)] if self.hoc else [])

    def source_for(self, steps, from_datastack: bool) -> str:
        """``cave``, ``file`` or ``none`` for this export (``steps.synapses`` False: none); none
        with ``hoc`` (Exp2Syn at synapses there will not be) is refused."""
        if not getattr(steps, "synapses", True) or self.source == "none":
            source = "none"
        elif self.file is not None:
            source = "file"
        elif self.source == "cave" and not from_datastack:
            raise InvalidArgumentError("synapse source 'cave' needs a root id from a CAVE datastack "
                                       "(not --source or a local file); give --synapses-file")
        else:
            source = "cave" if from_datastack else "none"
        if source == "none" and self.hoc:
            raise InvalidArgumentError("--synapse-hoc places Exp2Syn at the cell's synapses, and this output has "
                                       "none: give --synapses-file (or export from a CAVE datastack)")
        return source

    def record(self) -> dict[str, Any]:
        """As the sidecar's request records it."""
        return {"source": self.source, "file": str(self.file) if self.file is not None else None,
                "resolution": self.resolution, "root_id": str(self.root_id) if self.root_id is not None else None,
                "format": self.format} | ({"hoc": True} if self.hoc else {})


def _from_file(options: SynapseOptions, root_id):
    from mesh_export.retrieve.cave_tables import Lookup
    from mesh_export.retrieve.synapse_files import read_synapse_file

    rows = read_synapse_file(options.file, options.resolution, root_id)
    details = {"file": str(options.file), "rows": len(rows)}
    if root_id is not None:
        details.update(pre=int((rows.pre == int(root_id)).sum()), post=int((rows.post == int(root_id)).sum()))
        if len(rows) and not details["pre"] and not details["post"]:
            raise InputError(f"none of the {len(rows)} synapses in {Path(options.file).name} names root id {root_id} "
                             "as pre_pt_root_id or post_pt_root_id: another cell's table, or the wrong --root-id")
    return Lookup(rows, rows.source, details=details)


def morphology_answers(steps, options: SynapseOptions | None, *, cave=None, root_id=None,
                       no_cave_reason: str = "the mesh did not come from a CAVE datastack"):
    """What processing needs to know for a morphology of ``root_id`` (a
    :class:`~mesh_export.process.morphology.CaveAnswers`): the skeleton service's skeleton when
    asked for, else the nucleus (``--soma auto``), and the synapses (CAVE's ``cave``, a
    :class:`~mesh_export.retrieve.cave_tables.CaveRequest`, or a file)."""
    from mesh_export.process.morphology import CaveAnswers, wants_nucleus, wants_service

    options = (options or SynapseOptions()).checked()
    whose = root_id if root_id is not None else options.root_id
    answers = CaveAnswers(no_synapses=no_cave_reason, root_id=int(whose) if whose is not None else None,
                          datastack=cave.datastack if cave is not None else None)
    if cave is not None:
        from mesh_export.retrieve import cave_tables

        if wants_service(steps):
            answers.skeleton = cave_tables.service_skeleton(cave, root_id)
        if (answers.skeleton is None or answers.skeleton.value is None) and wants_nucleus(steps):
            answers.nucleus = cave_tables.nucleus(cave, root_id)
    source = options.source_for(steps, from_datastack=cave is not None)
    if source == "file":
        answers.synapses = _from_file(options, answers.root_id)
    elif source == "cave":
        from mesh_export.retrieve.cave_tables import synapses

        answers.synapses = synapses(cave, root_id, page_rows=options.page_rows)
    elif options.source == "none":
        answers.no_synapses = "synapse source none"
    return answers


def attach_file_synapses(skeleton, options: SynapseOptions):
    """``skeleton`` (a morphology read from a file) carrying the rows of ``options.file`` mapped
    onto it, inputs told from outputs by ``options.root_id``."""
    from mesh_export.process.synapse_map import attach_synapses

    found = _from_file(options, options.root_id)
    return attach_synapses(skeleton, found.value, options.root_id)


def check_landed(skeleton, options: SynapseOptions | None) -> None:
    """Refuse a synapse file of which not one synapse lands near the cell: the wrong units (nm
    read as voxels or the reverse), or another cell's table."""
    table = getattr(skeleton, "synapses", None)
    if table is None or not len(table) or table.placed.any() or options is None or options.file is None:
        return
    from mesh_export.process.synapse_map import MAX_GAP_UM

    nearest = table.info.get("nearest_gap_um")
    said = f" (the nearest is {nearest:,.1f} um outside it)" if nearest is not None else ""
    hint = ("voxels? give --synapse-resolution X,Y,Z" if options.resolution is None
            else f"nm rather than voxels of {options.resolution}? drop --synapse-resolution")
    raise InputError(f"none of the {len(table)} synapses in {Path(options.file).name} lies within "
                     f"{MAX_GAP_UM:g} um of the cell{said}: are the positions {hint}")


def write_table(skeleton, written: Path, options: SynapseOptions | None, *, units: str | None,
                overwrite: bool, template: str | None = None) -> dict[str, Any] | None:
    """The synapse table beside ``written`` when ``skeleton`` carries synapses (and with
    ``options.hoc`` the Exp2Syn companion, for the cell template ``template``); its record for
    the sidecar (file, format, units, counts), or None."""
    if getattr(skeleton, "synapses", None) is None:
        return None
    from mesh_export.writers.synapse_table import X_MARGIN, write_synapse_table

    fmt = (options or SynapseOptions()).format
    units = units or "um"
    path = write_synapse_table(skeleton, written, units=units, format=fmt, overwrite=overwrite)
    record = {"file": path.name, "format": fmt, "units": units, **skeleton.synapses.counts(),
              "section_x_margin": X_MARGIN}
    if options is not None and options.hoc:
        from mesh_export.writers.synapse_hoc import write_synapse_hoc

        hoc, count = write_synapse_hoc(skeleton, written, template=template, overwrite=overwrite)
        record["hoc"] = {"file": hoc.name, "exp2syn": count}
    return record
