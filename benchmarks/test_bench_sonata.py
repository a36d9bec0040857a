"""A 50-cell SONATA circuit from files (issue 23): pre-made SWC files and their synapse tables.

Five distinct MICrONS-like cells (tests/support/cells.py: pyramidal, spiny, large and two more
seeds; synapses from tests/support/synapse_tables.py) are converted once with their synapse
files (``convert --synapses-file``: SWC + ``.synapses.csv``); the 50 cells are copies of them
under 50 root ids, with tables rewritten as a connectome would have them: 30% of each cell's
inputs from other cells of the circuit, the rest from 3,000 outside partners.

Cases: :func:`mesh_export.jobs.circuit.build_circuit` on the 50 cells (read 50 SWCs and
tables, place every input synapse on Import3d's sections, write nodes, edges, indices, spikes,
the components), without compiling VecStim; and the same with ``nrnivmodl``.

Run with ``python -m pytest benchmarks/test_bench_sonata.py --benchmark-only``; whole process
(time and peak memory): ``/usr/bin/time -f "%e s %M KB" python benchmarks/test_bench_sonata.py DIR``
(DIR keeps the cells between runs; a second run times the build alone).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

_TESTS = Path(__file__).resolve().parents[1] / "tests"
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))

CELLS = 50
OUTSIDE = 3_000
KINDS = [dict(seed=0, name="pyramidal"),
         dict(seed=1, name="spiny", dendrites=5, apical=False, spines_per_um=2.0, soma_diameter=9.0),
         dict(seed=2, name="large", dendrites=8, soma_diameter=15.0, dendrite_length=(200.0, 300.0), axon_length=450.0),
         dict(seed=5, name="five", dendrites=7),
         dict(seed=6, name="six", dendrites=5, apical=False)]


def distinct_cells(directory: Path, cache: Path) -> list[tuple[int, Path, Path]]:
    """The five cells converted once: (root id, SWC, synapse table)."""
    from mesh_export.api import SynapseOptions, convert
    from support.cells import cached_cell
    from support.neurons import make_root_ids
    from support.synapse_tables import synapses_of, write_file
    from mesh_export.writers.synapse_table import table_path

    out = []
    for kind, root_id in zip(KINDS, make_root_ids(len(KINDS), 5050)):
        swc = directory / f"{kind['name']}.swc"
        if not table_path(swc).is_file():
            cell = cached_cell(cache, **kind)
            mesh = directory / f"{kind['name']}.ply"
            cell.mesh.export(mesh)
            synapses = write_file(synapses_of(cell, root_id), directory / f"{kind['name']}.synapses-in.csv")
            convert(mesh, swc, units_in="nm", overwrite=True,
                    synapses=SynapseOptions(file=synapses, root_id=root_id))
            mesh.unlink()
        out.append((root_id, swc, table_path(swc)))
    return out


def circuit_cells(directory: Path, cache: Path, count: int = CELLS, seed: int = 9):
    """``count`` cells (copies of the five) with connectome-like tables, as CellFiles."""
    from mesh_export.jobs.circuit import CellFiles
    from mesh_export.writers.synapse_table import read_synapse_table
    from support.neurons import make_root_ids

    directory.mkdir(parents=True, exist_ok=True)
    kinds = distinct_cells(directory, cache)
    rng = np.random.default_rng(seed)
    roots = np.array(make_root_ids(count + OUTSIDE, 7070), dtype=np.int64)
    rng.shuffle(roots)
    members, outside = roots[:count], roots[count:]
    cells = []
    for k, root in enumerate(members):
        _, swc, table = kinds[k % len(kinds)]
        target = directory / "cells" / f"{root}.swc"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(swc, target)
        frame = read_synapse_table(table)
        inputs = (frame.direction == "input").to_numpy()
        partner = np.where(rng.random(len(frame)) < 0.3, rng.choice(members[members != root], len(frame)),
                           rng.choice(outside, len(frame)))
        frame.loc[inputs, "partner_root_id"] = partner[inputs]
        frame["synapse_id"] = frame.synapse_id + (k + 1) * 10_000_000
        tables = target.with_name(target.name + ".synapses.csv")
        frame.to_csv(tables, index=False)
        cells.append(CellFiles(int(root), target, tables))
    return cells


@pytest.fixture(scope="module")
def cells(request, tmp_path_factory):
    from support.cells import cache_dir

    return circuit_cells(tmp_path_factory.mktemp("sonata-bench"), cache_dir(request))


def _build(cells, out, compile_mechanisms):
    from mesh_export.jobs.circuit import CircuitOptions, build_circuit

    return build_circuit(cells, out, CircuitOptions(compile_mechanisms=compile_mechanisms), overwrite=True)


def test_build_50_cell_circuit(benchmark, cells, tmp_path):
    result = benchmark.pedantic(_build, args=(cells, tmp_path / "circuit", "no"), rounds=3, iterations=1)
    benchmark.extra_info.update(result.counts)
    assert result.counts["cells"] == CELLS and result.counts["edges_among_cells"] > 0


def test_build_50_cell_circuit_and_compile_vecstim(benchmark, cells, tmp_path):
    result = benchmark.pedantic(_build, args=(cells, tmp_path / "circuit", "yes"), rounds=2, iterations=1)
    assert result.mechanisms == "compiled"


if __name__ == "__main__":  # whole process, under /usr/bin/time
    import time

    where = Path(sys.argv[1])
    started = time.perf_counter()
    made = circuit_cells(where, where / "cell-cache")
    prepared = time.perf_counter()
    result = _build(made, where / "circuit", sys.argv[2] if len(sys.argv) > 2 else "yes")
    print(f"cells ready {prepared - started:.1f} s; circuit {result.seconds:.2f} s; {result.counts}; "
          f"mechanisms {result.mechanisms}")
