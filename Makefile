# One environment in .venv, created on first use; every target below sets it up if needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAMPLE_ID ?= 864691135010718168

.PHONY: install demo test bench sample clean slicer chromium blender paraview gltf-validator

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The main job on the bundled offline sample (one neuron at true scale, lods 0-3): root id ->
# STL with a preview picture, PLY of a coarser lod, a NEURON-ready SWC, and an OBJ by convert.
demo: $(STAMP)
	$(BIN)/mesh-export $(SAMPLE_ID) --source sample --format stl --lod 0 --out out --overwrite --preview
	$(BIN)/mesh-export $(SAMPLE_ID) --source sample --format ply --lod 2 --out out --overwrite
	$(BIN)/mesh-export $(SAMPLE_ID) --source sample --format swc --lod 2 --out out --overwrite
	$(BIN)/mesh-export convert out/$(SAMPLE_ID)_lod0.stl out/$(SAMPLE_ID)_lod0.obj --overwrite
	@echo
	@echo "Wrote to out/ (each export has a <file>.json provenance sidecar beside it):"
	@echo "  out/$(SAMPLE_ID)_lod0.stl.png  look here first: the neuron, shaded, with a scale bar in um"
	@echo "  out/$(SAMPLE_ID)_lod0.stl      finest lod, nanometres (open in MeshLab, Blender, ParaView)"
	@echo "  out/$(SAMPLE_ID)_lod2.ply      a coarser lod of the same cell"
	@echo "  out/$(SAMPLE_ID)_lod2.swc      its morphology in micrometres, for NEURON (Import3d)"
	@echo "  out/$(SAMPLE_ID)_lod0.obj      the STL converted to OBJ"
	@echo "Next: mesh-export info $(SAMPLE_ID) --source sample; mesh-export datastacks; README 'Usage'."

# The print tests slice our files with PrusaSlicer (Debian's prusa-slicer, ~35 s and ~100 MB
# of packages on a fresh machine; its CLI needs no display). The suite runs in three workers on the two cores
# (many tests wait on a subprocess or a local server; one file stays on one worker, so module fixtures are built once),
# and a skipped test is a failure: a missing consumer (NEURON, PrusaSlicer ...) is a broken install.
test: $(STAMP) slicer chromium blender paraview gltf-validator
	MESH_EXPORT_REQUIRE_ALL_TESTS=1 MESH_EXPORT_REQUIRE_SLICER=1 $(BIN)/python -m pytest -q -n 3 --dist loadfile

slicer:
	@command -v prusa-slicer >/dev/null || { \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q prusa-slicer >/dev/null 2>&1 \
		|| { apt-get update -q >/dev/null && apt-get install -y -q prusa-slicer >/dev/null; }; }
	@command -v prusa-slicer >/dev/null || { echo "prusa-slicer could not be installed (apt-get install prusa-slicer as root)" >&2; exit 1; }

# The Neuroglancer layers test opens our layers in Debian's headless Chromium (through chromedriver).
chromium:
	@{ command -v chromium && command -v chromedriver; } >/dev/null || { \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
		|| { apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null; }; }
	@{ command -v chromium && command -v chromedriver; } >/dev/null || { echo "chromium could not be installed (apt-get install chromium chromium-driver as root)" >&2; exit 1; }

# The scene tests (tests/test_scene.py) open our files in Blender (Debian's blender 3.4, headless:
# ~25 s and ~190 MB; PyPI's bpy pins numpy<2, which the project's environment cannot take) and
# ParaView (Debian's python3-paraview 5.11, whose pvbatch needs an X server: Xvfb), and run the
# Khronos glTF validator (npm, into tests/.node).
blender:
	@command -v blender >/dev/null || { \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q --no-install-recommends blender >/dev/null 2>&1 \
		|| { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends blender >/dev/null; }; }
	@command -v blender >/dev/null || { echo "blender could not be installed (apt-get install blender as root)" >&2; exit 1; }

paraview:
	@{ command -v pvbatch >/dev/null && command -v Xvfb >/dev/null; } || { \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q python3-paraview xvfb xauth >/dev/null 2>&1 \
		|| { apt-get update -q >/dev/null && apt-get install -y -q python3-paraview xvfb xauth >/dev/null; }; }
	@{ command -v pvbatch >/dev/null && command -v Xvfb >/dev/null; } || { echo "ParaView/Xvfb could not be installed (apt-get install python3-paraview xvfb as root)" >&2; exit 1; }

gltf-validator:
	@test -d tests/.node/node_modules/gltf-validator || { \
		command -v npm >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q npm >/dev/null 2>&1 \
			|| { apt-get update -q >/dev/null && apt-get install -y -q npm >/dev/null; }; }; \
		npm install --silent --no-audit --no-fund --prefix tests/.node gltf-validator@2.0.0-dev.3.10; }

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m pytest benchmarks --benchmark-only --benchmark-columns=min,median,mean,rounds -q

# Rebuild the bundled sample (deterministic: the same bytes every run; needs the test extra
# for zmesh). tests/test_sample.py checks the bundled copy against a rebuild.
sample: $(STAMP)
	rm -rf src/mesh_export/data/sample
	$(BIN)/python tools/build_sample.py src/mesh_export/data/sample

clean:
	rm -rf $(VENV) out .pytest_cache .benchmarks
