"""A seeded fuzzer over every readable format: a small fixture of each, mutated (truncated, bits
flipped, counts made huge or negative, words of the wrong type), read by ``info`` and, when info
accepts it, written again by ``convert``, in-process. Every case ends in a figure or a
MeshExportError (never another exception, the CLI's exit 70), within a time bound, and
allocates memory in proportion to the file's size (a header declaring 2e9 vertices in a 1 kB
file must not allocate 24 GB).

``MESH_EXPORT_FUZZ_CASES`` sets the number of cases (default 3000, ~12 s on one core);
``MESH_EXPORT_FUZZ_SEED`` the seed (a failure names its case's seed and mutation)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import tracemalloc
from pathlib import Path

import meshio
import numpy as np
import pytest
import trimesh

import mesh_export
from mesh_export import api, errors
from mesh_export.cli.root import main

CASES = int(os.environ.get("MESH_EXPORT_FUZZ_CASES", "3000"))
# tracemalloc triples a case's time: memory is traced for the mutations that change what a
# header declares, and for every fourth of the others.
TRACED = ("huge", "number", "type", "count")

SEED = int(os.environ.get("MESH_EXPORT_FUZZ_SEED", "27"))
SECONDS_PER_CASE = 5.0  # far above any case's time: a bound that catches a hang, not a slow run
# Memory a case may allocate beyond what its file's size explains (trimesh's and meshio's own
# tables, zip buffers); the rest may be at most MEMORY_PER_BYTE times the file's size.
MEMORY_BASE = 24 << 20
MEMORY_PER_BYTE = 200
# Read by meshio under the product's address-space cap (writers._read.memory_bounded_by_file):
# a count it trusts ends in a refused allocation, which numpy still reports to tracemalloc, so
# for these the memory measured is the resident peak (what a read takes from the machine).
LIBRARY_READ = (".msh",)
from mesh_export.writers._read import _LIBRARY_MEMORY_BASE, _LIBRARY_MEMORY_PER_BYTE  # noqa: E402  (their bound)


def _resident_peak_reset() -> int:
    """Reset this process's resident peak (Linux clear_refs) and return what is resident now."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    return _resident_peak()


def _resident_peak() -> int:
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) << 10 for line in handle if line.startswith("VmHWM"))


def _binary_off(mesh) -> bytes:
    vertices = np.asarray(mesh.vertices, dtype=">f4")
    faces = np.asarray(mesh.faces)
    records = np.column_stack([np.full(len(faces), 3), faces, np.zeros(len(faces))]).astype(">i4")
    return (b"OFF BINARY\n" + np.array([len(vertices), len(faces), 0], dtype=">i4").tobytes()
            + vertices.tobytes() + records.tobytes())


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> dict[str, bytes]:
    """One small file of every format a user may hand to info or convert (80 faces; Gmsh files
    of a few tetrahedra, read by meshio, whose reader trusts the counts it is given)."""
    folder = tmp_path_factory.mktemp("fuzz-fixtures")
    sphere = trimesh.creation.icosphere(subdivisions=1, radius=1000.0)
    sphere = trimesh.Trimesh(sphere.vertices, sphere.faces, process=False)
    sphere.metadata["units"] = "nm"
    made = {}
    for name, options in (("ply", {}), ("ascii.ply", {"ascii": True}), ("stl", {}), ("ascii.stl", {"ascii": True}),
                          ("obj", {}), ("off", {}), ("glb", {}), ("gltf", {}), ("vtk", {}), ("ascii.vtk", {"ascii": True}),
                          ("vtp", {}), ("zlib.vtp", {"compress": True})):
        path = folder / f"f.{name}"
        mesh_export.write(sphere, path, **options)
        made[name] = path.read_bytes()
    coloured = sphere.copy()
    coloured.visual.vertex_colors = np.arange(len(sphere.vertices) * 4, dtype=np.uint8).reshape(-1, 4)
    made["colour.ply"] = trimesh.exchange.ply.export_ply(coloured, encoding="ascii")
    made["mixed.ply"] = (b"ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\n"
                         b"property float z\nelement face 3\nproperty list uchar int vertex_indices\nend_header\n"
                         b"0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n2 0 3\n4 0 1 2 3\n")
    made["lines.obj"] = b"v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1 \nf 1 2 3\nl 1 4\np 4\nf 1 3 4\n"
    made["binary.off"] = _binary_off(sphere)
    made["3mf"] = trimesh.exchange.threemf.export_3MF(sphere)
    meshio.write(folder / "f.vtu", meshio.Mesh(sphere.vertices, [("triangle", sphere.faces)]))
    made["vtu"] = (folder / "f.vtu").read_bytes()
    ball = meshio.Mesh(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]], dtype=float),
                       [("tetra", np.array([[0, 1, 2, 3], [1, 2, 3, 4]]))])
    for name, file_format, binary in (("msh", "gmsh", False), ("binary.msh", "gmsh", True),
                                      ("22.msh", "gmsh22", False), ("binary22.msh", "gmsh22", True)):
        meshio.write(folder / f"f.{name}", ball, file_format=file_format, binary=binary)
        made[name] = (folder / f"f.{name}").read_bytes()
    swc = ["1 1 0 0 0 5 -1"] + [f"{i} 3 {10 * i} 0 0 1 {i - 1}" for i in range(2, 30)]
    made["swc"] = ("\n".join(swc) + "\n").encode()
    return made


_NUMBER = re.compile(rb"-?\d+(?:\.\d+)?")
_TYPE_WORDS = [b"float", b"double", b"uchar", b"int", b"uint", b"char", b"short", b"list", b"vertex", b"face"]
_BAD_NUMBERS = [b"2000000000", b"4294967295", b"-1", b"-2147483648", b"0", b"nan", b"inf", b"1e999", b"x", b"3.5",
                b"99999999999999999999"]


def mutate(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One mutation of ``data`` and its name."""
    kind = rng.choice(["truncate", "flip", "huge", "number", "type", "splice", "binary-count"])
    if kind == "truncate":
        at = int(rng.integers(0, len(data)))
        return data[:at], f"truncate@{at}"
    if kind == "flip":
        out = bytearray(data)
        spots = rng.integers(0, len(data), size=int(rng.integers(1, 9)))
        for spot in spots:
            out[spot] ^= 1 << int(rng.integers(0, 8))
        return bytes(out), f"flip@{spots.tolist()}"
    if kind in ("huge", "number"):
        # A number of the header (huge counts) or anywhere (a value of the wrong kind).
        region = data[:300] if kind == "huge" else data
        found = list(_NUMBER.finditer(region))
        if not found:
            return data[::-1], "reversed"
        match = found[int(rng.integers(0, len(found)))]
        word = _BAD_NUMBERS[0 if kind == "huge" and rng.random() < 0.5 else int(rng.integers(0, len(_BAD_NUMBERS)))]
        return data[: match.start()] + word + data[match.end():], f"{kind}@{match.start()}={word.decode()}"
    if kind == "type":
        present = [w for w in _TYPE_WORDS if w in data[:600]]
        if not present:
            return data + data[: len(data) // 2], "doubled"
        old = present[int(rng.integers(0, len(present)))]
        new = _TYPE_WORDS[int(rng.integers(0, len(_TYPE_WORDS)))]
        return data.replace(old, new, 1), f"type {old.decode()}->{new.decode()}"
    if kind == "splice":
        start, stop = sorted(int(v) for v in rng.integers(0, len(data), size=2))
        garbage = rng.integers(0, 256, size=int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        return data[:start] + garbage + data[stop:], f"splice@{start}:{stop}"
    # A 32-bit count in a binary header (STL's at byte 80, binary OFF's after its first line,
    # PLY's first record) set to a huge or negative value.
    at = 80 if len(data) > 84 and rng.random() < 0.5 else int(rng.integers(0, max(1, min(len(data), 200) - 4)))
    value = int(rng.choice([2_000_000_000, 0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, 1 << 20]))
    order = "big" if rng.random() < 0.5 else "little"
    return data[:at] + value.to_bytes(4, order) + data[at + 4:], f"count@{at}={value:#x}/{order}"


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def run_case(path: Path, out: Path) -> str:
    """``info`` then, if it reads the file, ``convert`` to a native format: "read", "refused"
    or raises what neither refused."""
    try:
        api.info(path)
    except errors.MeshExportError:
        return "refused"
    target = out.with_suffix(".swc" if path.suffix == ".swc" else ".ply")
    try:
        mesh_export.convert(path, target, overwrite=True)
    except errors.MeshExportError:
        return "refused by convert"
    return "read"


def test_mutated_files_are_read_or_refused_never_a_crash_a_hang_or_a_huge_allocation(fixtures, tmp_path):
    for name, data in fixtures.items():  # every fixture reads as it is (and imports are warm)
        path = tmp_path / f"clean.{name}"
        path.write_bytes(data)
        assert run_case(path, tmp_path / "clean-out") == "read", name
    names = sorted(fixtures)
    rng = np.random.default_rng(SEED)
    outcomes: dict[str, int] = {}
    failures = []
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for case in range(CASES):
            name = names[case % len(names)]
            data, mutation = mutate(fixtures[name], rng)
            path = tmp_path / f"case.{name}"
            path.write_bytes(data)
            traced = mutation.startswith(TRACED) or case % 4 == 0
            resident = traced and path.suffix in LIBRARY_READ
            if resident:
                base = _resident_peak_reset()
            elif traced:
                tracemalloc.start()
                base = tracemalloc.get_traced_memory()[0]
            signal.setitimer(signal.ITIMER_REAL, SECONDS_PER_CASE)
            try:
                with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                    outcome = run_case(path, tmp_path / "out")
            except _Hang:
                outcome = None
                failures.append(f"case {case} ({name}, {mutation}): no answer within {SECONDS_PER_CASE} s")
            except Exception as exc:  # what the CLI reports as an internal error, exit 70
                outcome = None
                failures.append(f"case {case} ({name}, {mutation}): {type(exc).__name__}: {exc}"[:300])
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if resident:
                peak = _resident_peak() - base
            elif traced:
                peak = tracemalloc.get_traced_memory()[1] - base
                tracemalloc.stop()
            bound = (_LIBRARY_MEMORY_BASE + _LIBRARY_MEMORY_PER_BYTE * len(data) if resident
                     else MEMORY_BASE + MEMORY_PER_BYTE * len(data))
            if traced and peak > bound:
                failures.append(f"case {case} ({name}, {mutation}): allocated {peak:,} bytes for a "
                                f"{len(data):,}-byte file")
            if outcome:
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
    finally:
        tracemalloc.stop()
        signal.signal(signal.SIGALRM, previous)
    assert not failures, f"{len(failures)} of {CASES} cases failed (seed {SEED}):\n" + "\n".join(failures[:30])
    # The mutations reach both ends: many files still read, many refused.
    assert outcomes.get("read", 0) > CASES // 10 and outcomes.get("refused", 0) > CASES // 10, outcomes


def _huge_headers() -> dict[str, bytes]:
    return {
        "huge.off": b"OFF\n2000000000 2000000000 0\n" + b"0 0 0\n" * 100,
        "huge.ply": (b"ply\nformat binary_little_endian 1.0\nelement vertex 2000000000\nproperty float x\n"
                     b"property float y\nproperty float z\nelement face 1\nproperty list uchar int vertex_indices\n"
                     b"end_header\n" + bytes(900)),
        "huge-ascii.ply": (b"ply\nformat ascii 1.0\nelement vertex 2000000000\nproperty float x\nproperty float y\n"
                           b"property float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n"
                           + b"0 0 0\n" * 100),
        "huge-list.ply": (b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\n"
                          b"property float y\nproperty float z\nelement face 50\nproperty list uint int vertex_indices\n"
                          b"end_header\n" + bytes(36) + (2_000_000_000).to_bytes(4, "little") + bytes(600)),
        "huge.stl": bytes(80) + (2_000_000_000).to_bytes(4, "little") + bytes(900),
        "huge-binary.off": b"OFF BINARY\n" + np.array([2_000_000_000, 2_000_000_000, 0], ">i4").tobytes() + bytes(900),
        "huge.msh": (b"$MeshFormat\n2.2 0 8\n$EndMeshFormat\n$Nodes\n2000000000\n"
                     + b"".join(b"%d 0 0 %d\n" % (i, i) for i in range(1, 60)) + b"$EndNodes\n"),
    }


@pytest.mark.parametrize("name", sorted(_huge_headers()))
def test_a_header_declaring_2e9_elements_in_1_kb_is_refused_before_allocating(name, tmp_path):
    path = tmp_path / name
    path.write_bytes(_huge_headers()[name])
    if path.suffix in LIBRARY_READ:  # refused by the address-space cap: see LIBRARY_READ
        base = _resident_peak_reset()
        with pytest.raises(errors.InputError, match="cannot read") as caught:
            api.info(path)
        peak = _resident_peak() - base
    else:
        tracemalloc.start()
        try:
            with pytest.raises(errors.InputError, match="cannot read") as caught:
                api.info(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 8 << 20, peak
    assert "\n" not in str(caught.value)


def test_the_cli_in_process_gives_a_refused_file_one_line_and_its_exit_code(tmp_path, capsys):
    path = tmp_path / "huge.off"
    path.write_bytes(_huge_headers()["huge.off"])
    for argv in (["info", str(path)], ["convert", str(path), str(tmp_path / "o.stl")]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == errors.InputError.exit_code
        err = capsys.readouterr().err
        assert err.startswith("mesh-export: error: ") and len(err.strip().splitlines()) == 1, err
        assert "declares 2,000,000,000 vertices" in err


def test_a_library_reader_that_trusts_a_declared_count_is_stopped_at_the_files_bound(tmp_path):
    """meshio allocates what a .msh declares before reading it (16 GB for a 491-byte file
    declaring 2e9 nodes); under the cap the allocation fails, and the file is refused saying why."""
    from mesh_export.writers._read import memory_bounded_by_file

    with memory_bounded_by_file(1000):
        with pytest.raises(MemoryError):
            np.empty(3 << 30, dtype=np.uint8)
    np.empty(3 << 30, dtype=np.uint8)  # the cap is lifted after the read
    ball = meshio.Mesh(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float),
                       [("tetra", np.array([[0, 1, 2, 3]]))])
    meshio.write(tmp_path / "ball.msh", ball, file_format="gmsh", binary=False)
    text = (tmp_path / "ball.msh").read_bytes()
    counts = re.search(rb"\$Nodes\n(\d+) (\d+) ", text)
    path = tmp_path / "declares.msh"
    path.write_bytes(text[: counts.start(2)] + b"2000000000" + text[counts.end(2):])
    with pytest.raises(errors.InputError, match="declares more than a file of"):
        api.info(path)
