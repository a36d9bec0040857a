"""Many root ids into ONE output: a SONATA circuit BMTK's bionet runs (``--format sonata``).

Two stages, so that a batch's per-id errors and resume work as for every other format:

1. the cells: each id exported as an SWC with its synapse table (:func:`jobs.batch.export_many`)
   into ``<out>.cells/``, with its sidecars and manifest: a re-run skips the cells already
   there, a failed id is reported and retried next time;
2. the circuit (:func:`build_circuit`, also usable on SWC files and tables made elsewhere):
   the cells' input synapses become edges, from another cell of the circuit or from a virtual
   node per outside partner, whose spikes (Poisson, seeded) drive the cells. It is written to
   a temporary directory beside ``<out>``, VecStim compiled into it (``nrnivmodl``), and
   renamed into place: a failure leaves no partial circuit.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from mesh_export.errors import InputError, InvalidArgumentError, OutputError

__all__ = ["CircuitOptions", "CircuitResult", "CellFiles", "export_circuit", "build_circuit", "cells_dir_for",
           "SIDECAR"]

#: mesh-export's record inside a circuit directory: what was asked, what went in.
SIDECAR = "mesh_export_circuit.json"
_COMPILE = ("auto", "yes", "no")
# The table's numbers are rounded (4 decimals, swc_pos 5): a point may look this much (um) off.
_TABLE_SLACK_UM = 0.1


@dataclass
class CircuitOptions:
    """How a circuit is made of its cells' synapses.

    ``weight``: each synapse's Exp2Syn weight (uS); ``delay`` (ms); ``rate_hz``: each outside
    partner's Poisson firing rate in the input spike file, ``seed`` its generator;
    ``biophysics``: the cell model and the run (a
    :class:`~mesh_export.writers.sonata.Biophysics`: passive + Hodgkin-Huxley, Exp2Syn time
    constants, ``tstop``); ``compile_mechanisms``: ``auto`` (run ``nrnivmodl`` on VecStim when
    NEURON's is installed, else say how), ``yes`` (fail without it) or ``no``.
    """

    weight: float = 0.0005
    delay: float = 1.0
    rate_hz: float = 10.0
    seed: int = 0
    biophysics: Any = None
    compile_mechanisms: str = "auto"

    def checked(self) -> "CircuitOptions":
        from mesh_export.writers.sonata import Biophysics

        try:
            import h5py  # noqa: F401
        except ImportError:
            raise InvalidArgumentError("--format sonata needs h5py: pip install 'mesh-export[sonata]'") from None
        if self.compile_mechanisms not in _COMPILE:
            raise InvalidArgumentError(f"compile_mechanisms is one of {', '.join(_COMPILE)}, "
                                       f"not {self.compile_mechanisms!r}")
        for name in ("weight", "delay", "rate_hz"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise InvalidArgumentError(f"circuit {name} must be a number >= 0, got {value!r}")
        bio = self.biophysics if self.biophysics is not None else Biophysics()
        if not bio.tstop > 0 or not bio.dt > 0:
            raise InvalidArgumentError(f"circuit tstop and dt must be positive, got {bio.tstop}, {bio.dt}")
        return CircuitOptions(self.weight, self.delay, self.rate_hz, int(self.seed), bio, self.compile_mechanisms)

    def record(self) -> dict[str, Any]:
        return {**{k: v for k, v in asdict(self).items() if k != "biophysics"},
                "biophysics": asdict(self.biophysics) if self.biophysics is not None else None}


@dataclass
class CellFiles:
    """One cell's files: its SWC and the synapse table written beside it (``swc_id``,
    ``swc_pos``, ``direction``, ``partner_root_id``: writers.synapse_table's columns)."""

    root_id: int
    morphology: Path
    synapses: Path

    def __post_init__(self) -> None:
        self.root_id = int(self.root_id)
        self.morphology, self.synapses = Path(self.morphology), Path(self.synapses)


@dataclass
class CircuitResult:
    output: Path | None  # None: no cell made it, no circuit written
    batch: Any = None  # the cells' BatchResult (None when built from files)
    counts: dict[str, Any] = field(default_factory=dict)
    mechanisms: str = ""
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        from mesh_export.errors import EXIT_ALL_OK

        return self.batch.exit_code if self.batch is not None else EXIT_ALL_OK

    def summary(self) -> dict[str, Any]:
        return {"status": "ok" if self.output is not None else "failed",
                "output": str(self.output) if self.output is not None else None,
                **self.counts, "mechanisms": self.mechanisms, "seconds": round(self.seconds, 3)}


def cells_dir_for(out_dir: str | os.PathLike) -> Path:
    """Where a circuit's cells are exported (kept, so that a re-run resumes): ``<out>.cells``."""
    out = Path(out_dir)
    return out.with_name(out.name + ".cells")


def _check_circuit_target(target: Path, overwrite: bool, request: dict) -> None:
    """Refuse, before any work, a target that is a file, or a directory that is not this
    circuit made by this request (a re-run of the same request replaces its own circuit:
    that is how it resumes) unless ``overwrite``."""
    if target.exists() and not target.is_dir():
        raise OutputError(f"output path exists and is not a directory: {target}")
    _refuse_foreign_directory(target)
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        try:
            previous = json.loads((target / SIDECAR).read_text()).get("request")
        except (OSError, ValueError):
            previous = None
        if previous != request:
            raise OutputError(f"{target} holds another circuit; pass --overwrite to replace it")
    if not os.access(target.parent if target.parent.exists() else Path("."), os.W_OK):
        raise OutputError(f"output directory is not writable: {target.parent}")


def _refuse_foreign_directory(target: Path) -> None:
    """A circuit replaces its whole directory: never one that holds anything but a circuit
    mesh-export wrote (with or without --overwrite, which elsewhere replaces files, not folders)."""
    if target.is_dir() and any(target.iterdir()) and not (target / SIDECAR).is_file():
        raise OutputError(f"{target} is not empty and holds no circuit mesh-export wrote; a circuit takes a "
                          "directory of its own (it replaces the whole directory): choose another --out")


def _request(ids: list[str], options: CircuitOptions, export_kwargs: dict) -> dict:
    synapses = export_kwargs.get("synapses")
    request = {"root_ids": ids, "circuit": options.record(),
               "datastack": export_kwargs.get("datastack"), "source": export_kwargs.get("source"),
               "synapses": synapses.record() if synapses is not None else None}
    return json.loads(json.dumps(request, default=str))  # as the record holds it (tuples as lists)


def export_circuit(root_ids: Iterable[int | str], *, out_dir: str | os.PathLike, circuit: CircuitOptions | None = None,
                   overwrite: bool = False, manifest: bool = True, on_record: Callable[[dict], None] | None = None,
                   **export_kwargs: Any) -> CircuitResult:
    """Export ``root_ids`` as one SONATA circuit in ``out_dir`` (see the module docstring).
    ``circuit``: a :class:`CircuitOptions`; every other keyword as for
    :func:`mesh_export.jobs.batch.export_many` (``workers``, ``synapses``, ``datastack`` ...;
    ``format``, if given, must be sonata). Returns a :class:`CircuitResult`: ``exit_code`` is
    the batch's (some ids failed: 20; the circuit then holds the others)."""
    from mesh_export.jobs.batch import export_many
    from mesh_export.jobs.synapses import SynapseOptions
    from mesh_export.writers.synapse_table import table_path

    started = time.perf_counter()
    fmt = export_kwargs.pop("format", "sonata")
    if fmt != "sonata":
        raise InvalidArgumentError(f"export_circuit writes sonata, not {fmt!r}")
    options = (circuit or CircuitOptions()).checked()
    ids = list(dict.fromkeys(str(i).strip() for i in root_ids))
    if not ids:
        raise InvalidArgumentError("no root ids given (arguments, --ids-file, or - for stdin)")
    synapses = (export_kwargs.get("synapses") or SynapseOptions()).checked()
    if synapses.source == "none" or not getattr(export_kwargs.get("steps"), "synapses", True):
        raise InvalidArgumentError("a circuit is made of the cells' synapses: drop --no-synapses (synapse source none)")
    if export_kwargs.get("source") is not None and synapses.file is None:
        raise InvalidArgumentError("a circuit needs the cells' synapses: a CAVE datastack, or --synapses-file "
                                   "with --source")
    steps = export_kwargs.get("steps")
    changed_units = [name for name, value in (
        ("--units", export_kwargs.get("units") or getattr(steps, "units", None)),
        ("--scale", export_kwargs.get("scale") if export_kwargs.get("scale") is not None else getattr(steps, "scale", None)),
        ("--allow-units", export_kwargs.get("allow_units"))) if value not in (None, False, "um")]
    if changed_units:
        raise InvalidArgumentError(f"a SONATA circuit's morphologies and positions are micrometres (BMTK reads them "
                                   f"so): {', '.join(changed_units)} cannot apply")
    export_kwargs["synapses"] = synapses
    target = Path(out_dir)
    request = _request(ids, options, export_kwargs)
    _check_circuit_target(target, overwrite, request)
    cells_dir = cells_dir_for(target)
    batch = export_many(ids, format="swc", out_dir=cells_dir, manifest=manifest, overwrite=overwrite,
                        on_record=on_record, **export_kwargs)
    by_id = {r["root_id"]: r for r in batch.records if r.get("status") == "ok"}
    cells = [CellFiles(int(i), Path(by_id[i]["output"]), table_path(by_id[i]["output"], synapses.format))
             for i in ids if i in by_id]
    result = CircuitResult(None, batch)
    if cells and not batch.interrupted:
        built = build_circuit(cells, target, options, overwrite=True, request=request,
                              failed=[r["root_id"] for r in batch.failed])
        result.output, result.counts, result.mechanisms = built.output, built.counts, built.mechanisms
    result.seconds = time.perf_counter() - started
    return result


# --------------------------------------------------------------------------- assembly


def _read_cell(cell: CellFiles):
    from mesh_export.model import read_swc
    from mesh_export.writers.synapse_table import read_synapse_table

    skeleton = read_swc(cell.morphology)
    if skeleton.metadata.get("repairs"):
        raise InputError(f"{cell.morphology}: not an SWC as mesh-export writes it ({skeleton.metadata['repairs'][0]})")
    table = read_synapse_table(cell.synapses)
    ids = table["swc_id"].to_numpy(dtype=np.float64, na_value=np.nan)
    placed = np.isfinite(ids)
    if ((ids[placed] < 1) | (ids[placed] > len(skeleton))).any():
        raise InputError(f"{cell.synapses}: swc_id outside {cell.morphology.name}'s 1-{len(skeleton)}: "
                         "a table of another morphology")
    # Each synapse lies no farther from its (swc_id, swc_pos) point of this morphology's axis than
    # the table says (a spine's length may make it say more): else the table is another cell's.
    node = ids[placed].astype(np.int64) - 1
    parent = skeleton.parents[node]
    parent = np.where(parent >= 0, parent, node)
    pos = table["swc_pos"].to_numpy(dtype=np.float64, na_value=np.nan)[placed, None]
    axis = skeleton.nodes[node] + pos * (skeleton.nodes[parent] - skeleton.nodes[node])
    where = table[["x", "y", "z"]].to_numpy(dtype=np.float64)[placed]
    said = table["distance_to_axis"].to_numpy(dtype=np.float64, na_value=np.nan)[placed]
    beyond = np.linalg.norm(where - axis, axis=1) - said
    if len(beyond) and np.nanmax(beyond) > _TABLE_SLACK_UM:
        raise InputError(f"{cell.synapses}: its synapses are up to {np.nanmax(beyond):.1f} um farther from "
                         f"{cell.morphology.name}'s cable than the table says: a table of another morphology")
    return skeleton, table


def _edges_of(skeleton, rows, source: np.ndarray, target: int, options: CircuitOptions):
    """Edges onto cell ``target`` for its table's ``rows`` (from ``source`` node ids)."""
    from mesh_export.writers.sonata import Edges, afferent_sections

    node = rows["swc_id"].to_numpy(dtype=np.int64) - 1  # our SWC ids are 1..n in file order
    pos = rows["swc_pos"].to_numpy(dtype=np.float64)
    section, x = afferent_sections(skeleton, node, pos)
    size = rows["size"].to_numpy(dtype=np.float64, na_value=np.nan)
    n = len(rows)
    return Edges(source=source, target=np.full(n, target, np.int64), section_id=section, section_pos=x,
                 swc_id=node + 1, swc_pos=pos, size=size,
                 synapse_id=rows["synapse_id"].to_numpy(dtype=np.int64),
                 weight=np.full(n, options.weight), delay=np.full(n, options.delay))


def _split(edges, keep: np.ndarray):
    from mesh_export.writers.sonata import Edges

    return Edges(**{k: getattr(edges, k)[keep] for k in Edges.__dataclass_fields__})


def _join(parts) -> Any:
    from mesh_export.writers.sonata import Edges

    names = list(Edges.__dataclass_fields__)
    if not parts:
        return Edges(**{k: np.zeros(0, np.float64 if k in ("section_pos", "swc_pos", "size", "weight", "delay")
                                  else np.int64) for k in names})
    return Edges(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in names})


def assemble(cells: list[CellFiles], options: CircuitOptions):
    """The :class:`~mesh_export.writers.sonata.Circuit` of ``cells``: every placed input
    synapse an edge, from a cell of the circuit or from an outside partner; the partners'
    spikes. Counts of what was left out (outputs, unplaced, no partner) in ``info``."""
    from mesh_export.writers.sonata import Circuit, CircuitCell

    options = options.checked()
    index = {c.root_id: k for k, c in enumerate(cells)}
    if len(index) != len(cells):
        raise InvalidArgumentError("a circuit lists each root id once")
    members, inside, outside, partners = [], [], [], []
    info = {"rows": 0, "inputs": 0, "inputs_not_placed": 0, "inputs_partner_unknown": 0, "outputs": 0}
    for target, cell in enumerate(cells):
        skeleton, table = _read_cell(cell)
        soma = skeleton.nodes[skeleton.types == 1]
        members.append(CircuitCell(cell.root_id, cell.morphology, soma.mean(axis=0)))
        direction = table["direction"].astype(str).to_numpy()
        # Root ids exceed float64's exact integers: kept as int64, 0 where empty.
        partner = table["partner_root_id"].to_numpy(dtype=np.int64, na_value=0)
        inputs = direction == "input"
        placed = table["swc_id"].notna().to_numpy()
        known = partner > 0
        info["rows"] += len(table)
        info["inputs"] += int(inputs.sum())
        info["outputs"] += int((direction == "output").sum())
        info["inputs_not_placed"] += int((inputs & ~placed).sum())
        info["inputs_partner_unknown"] += int((inputs & placed & ~known).sum())
        use = inputs & placed & known
        partner_id = partner[use]
        local = np.array([p in index for p in partner_id.tolist()], dtype=bool)
        # the source: a cell's node id, or (for now) the outside partner's root id
        source = np.array([index.get(p, p) for p in partner_id.tolist()], dtype=np.int64)
        edges = _edges_of(skeleton, table[use], source, target, options)
        inside.append(_split(edges, local))
        outside.append(_split(edges, ~local))
        partners.append(partner_id[~local])
    recurrent, external = _join(inside), _join(outside)
    partner_ids = np.unique(np.concatenate(partners)) if partners else np.zeros(0, np.int64)
    external.source = np.searchsorted(partner_ids, external.source)  # root id -> virtual node id

    bio = options.biophysics
    rng = np.random.default_rng(options.seed)
    counts = rng.poisson(options.rate_hz * bio.tstop / 1000.0, size=len(partner_ids))
    spike_nodes = np.repeat(np.arange(len(partner_ids)), counts)
    spike_times = np.round(rng.uniform(0.0, bio.tstop, size=int(counts.sum())), 3)
    info.update(cells=len(members), partners=int(len(partner_ids)), edges_among_cells=int(len(recurrent)),
                edges_from_partners=int(len(external)), input_spikes=int(len(spike_times)))
    return Circuit(members, partner_ids, recurrent, external, spike_nodes, spike_times, bio, info)


def _nrnivmodl() -> str | None:
    found = shutil.which("nrnivmodl")
    if found:
        return found
    beside = Path(sys.executable).parent / "nrnivmodl"  # a venv's NEURON, not on PATH
    return str(beside) if beside.is_file() else None


def _compile_mechanisms(mechanisms: Path, how: str) -> str:
    """Compile VecStim in ``mechanisms`` (BMTK loads ``<mechanisms_dir>/x86_64/``); say what was done."""
    hint = "run `nrnivmodl modfiles` in components/mechanisms before bionet"
    if how == "no":
        return f"not compiled: {hint}"
    tool = _nrnivmodl()
    if tool is None:
        if how == "yes":
            raise InvalidArgumentError("compiling the circuit's mechanisms needs NEURON's nrnivmodl (pip install neuron)")
        return f"not compiled (no nrnivmodl found): {hint}"
    done = subprocess.run([tool, "modfiles"], cwd=mechanisms, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()
        raise OutputError(f"nrnivmodl failed on the circuit's VecStim: {last[-1] if last else done.returncode}")
    return "compiled"


def build_circuit(cells: list[CellFiles], out_dir: str | os.PathLike, options: CircuitOptions | None = None, *,
                  overwrite: bool = False, request: dict | None = None, failed: list[str] = ()) -> CircuitResult:
    """Write the circuit of ``cells`` (SWC files and their synapse tables) as ``out_dir``,
    atomically: built in a temporary directory beside it and renamed into place."""
    from mesh_export._version import __version__
    from mesh_export.writers.sonata import write_circuit

    started = time.perf_counter()
    options = (options or CircuitOptions()).checked()
    target = Path(out_dir)
    if request is None:
        cells = [c if isinstance(c, CellFiles) else CellFiles(*c) for c in cells]
        request = json.loads(json.dumps({"cells": [[str(c.root_id), str(c.morphology), str(c.synapses)] for c in cells],
                                         "circuit": options.record()}))
        _check_circuit_target(target, overwrite, request)
    circuit = assemble(cells, options)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{secrets.token_hex(8)}.part"
    old = None
    try:
        write_circuit(circuit, tmp)
        mechanisms = _compile_mechanisms(tmp / "components" / "mechanisms", options.compile_mechanisms)
        record = {"mesh_export": __version__, "request": request,
                  "cells": [str(c.root_id) for c in cells], "failed": list(failed),
                  "counts": circuit.info, "mechanisms": mechanisms}
        (tmp / SIDECAR).write_text(json.dumps(record, indent=2) + "\n")
        if target.exists():
            _refuse_foreign_directory(target)
            old = target.parent / f".{target.name}.{secrets.token_hex(8)}.old"
            os.rename(target, old)
        os.rename(tmp, target)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not target.exists():
            os.rename(old, target)
        if isinstance(exc, OSError):  # a full disk, a permission: the user's to fix, in one line
            raise OutputError(f"cannot write the circuit {target}: {exc.strerror or exc}") from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return CircuitResult(target, None, circuit.info, mechanisms, time.perf_counter() - started)
