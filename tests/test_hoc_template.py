"""The hoc template's name: names NEURON cannot load as a template (a hoc keyword, a built-in
class, function or mechanism, a section name of the cell) are refused with one line before a
file is written, and NEURON itself is shown to fail on a few of them while a fine name loads.
Also the CLI's usage errors about --template (and sonata's --plate) as one line, not a usage box.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import mesh_export
from conftest import run_cli
from consumers import hoc_template_of, load_hoc_in_neuron
from mesh_export import errors
from mesh_export.writers.hoc import template_name
from support import swc_quirks

# Written out here, not taken from the product: the test must catch a name dropped from its lists.
KEYWORDS = ("for if else while break continue return stop proc func obfunc iterator iterator_statement objref "
            "objectvar strdef double create connect access insert uninsert forall forsec ifsec begintemplate "
            "endtemplate public external local localobj new print delete help depvar eqn setpointer em read "
            "debug quit").split()
BUILTINS = ("Vector List String SectionList SectionRef Matrix Graph File Random Exp2Syn ExpSyn NetStim NetCon "
            "IClamp SEClamp VClamp APCount AlphaSynapse PointProcessMark VecStim Import3d_GUI Import3d_SWC_read "
            "Shape PlotShape Deck Timer Pointer StringFunctions CVode Glyph ValueFieldEditor Impedance "
            "LinearMechanism KSChan ParallelContext PythonObject").split()
MECHANISMS = ["hh", "pas"]
SECTIONS = ["soma", "axon", "dend", "apic", "all"]

# A NEURON session as a model runs one: the standard library loaded, then the cell's file. Prints
# "loaded" only when the file loads and its template instantiates.
_LOAD = """
import sys
from neuron import h
h.load_file("stdrun.hoc")
h.load_file("import3d.hoc")
try:
    ok = h.load_file(sys.argv[1])
    cell = getattr(h, sys.argv[2])()
    print("loaded" if ok == 1 else "not loaded")
except Exception as exc:
    print("not loaded:", type(exc).__name__)
"""


@pytest.fixture(scope="module")
def swc(tmp_path_factory):
    return swc_quirks.plain(tmp_path_factory.mktemp("hoc_template"))


@pytest.mark.parametrize("name", KEYWORDS + BUILTINS + MECHANISMS + SECTIONS)
def test_a_name_neuron_cannot_load_is_refused(swc, tmp_path, name):
    skeleton = mesh_export.load(swc)
    with pytest.raises(errors.InvalidArgumentError) as info:
        mesh_export.write(skeleton, tmp_path / "cell.hoc", template=name)
    message = str(info.value)
    assert len(message.splitlines()) == 1 and repr(name) in message, message
    assert not list(tmp_path.iterdir())


def _load_in_fresh_neuron(path, template) -> str:
    env = dict(os.environ, NEURON_MODULE_OPTIONS="-nogui")
    result = subprocess.run([sys.executable, "-c", _LOAD, str(path), template], capture_output=True, text=True,
                            env=env, timeout=120)
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr


def test_neuron_fails_on_such_names_and_loads_a_fine_one(swc, tmp_path):
    """What the refusal protects from: the file the writer made before, with the name put in."""
    fine = "HocTemplateFineName"
    hoc = mesh_export.write(mesh_export.load(swc), tmp_path / "fine.hoc", template=fine)
    assert _load_in_fresh_neuron(hoc, fine) == "loaded"
    text = hoc.read_text()
    for name in ("for", "objref", "Exp2Syn", "hh", "String"):
        bad = tmp_path / f"bad_{name}.hoc"
        bad.write_text(text.replace(f"template {fine}", f"template {name}"))
        assert hoc_template_of(bad) == name
        assert _load_in_fresh_neuron(bad, name).startswith("not loaded"), name
    # And in the suite's own session (NEURON, the standard library and Import3d loaded).
    cell, sections = load_hoc_in_neuron(hoc, fine)
    assert len(sections) == 13


def test_default_names_from_stems_that_differ_in_punctuation_coincide(swc):
    """Documented in writers.hoc: both stems become one identifier; --template tells them apart."""
    skeleton = mesh_export.load(swc)
    skeleton.metadata = {}
    assert template_name(skeleton, "a-b.swc") == template_name(skeleton, "a_b.swc") == "Cell_a_b"


def _one_line_error(result) -> str:
    message = result.stderr.strip()
    assert result.returncode == errors.InvalidArgumentError.exit_code, (result.returncode, result.stderr)
    assert len(message.splitlines()) == 1 and message.startswith("mesh-export: error: "), message
    return message


def test_cli_refuses_a_keyword_template_in_one_line(swc, tmp_path):
    target = tmp_path / "out" / "cell.hoc"
    target.parent.mkdir()
    message = _one_line_error(run_cli("convert", swc, target, "--template", "for"))
    assert "'for'" in message and "keyword" in message
    message = _one_line_error(run_cli("convert", swc, target, "--template", "Exp2Syn"))
    assert "'Exp2Syn'" in message and "built-in" in message
    assert not list(target.parent.iterdir())


def test_cli_template_and_plate_usage_errors_are_one_line(tmp_path):
    from mesh_export.retrieve.sources import sample_path

    root_id = json.loads((sample_path() / "provenance").read_text())["root_ids"][0]
    env = {"MESH_EXPORT_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "out"
    message = _one_line_error(run_cli(root_id, "--source", "sample", "--format", "sonata", "--out", out,
                                      "--template", "SonataNamed", env=env))
    assert "--template" in message and "plates" not in message and "--plate" not in message
    message = _one_line_error(run_cli(root_id, "--source", "sample", "--format", "sonata", "--out", out,
                                      "--plate", "250x210mm", env=env))
    assert "--plate" in message and "template" not in message
    message = _one_line_error(run_cli(root_id, root_id, "--source", "sample", "--format", "hoc", "--out", out,
                                      "--template", "BatchNamed", env=env))
    assert "--template" in message and "batch" in message
    assert not out.exists() or not list(out.iterdir())
