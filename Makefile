# One environment in .venv, created on first use; every target below sets it up if needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAMPLE_ID ?= 864691135010718168

.PHONY: install demo test bench sample clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The main job on the bundled offline sample: root id -> STL (+ provenance sidecar) in out/.
demo: $(STAMP)
	mkdir -p out
	$(BIN)/mesh-export $(SAMPLE_ID) --source sample --format stl --lod 0 --out out --overwrite
	$(BIN)/mesh-export $(SAMPLE_ID) --source sample --format ply --lod 2 --out out --overwrite
	$(BIN)/mesh-export $(SAMPLE_ID) --source sample --format swc --out out --overwrite
	$(BIN)/mesh-export convert out/$(SAMPLE_ID)_lod0.stl out/$(SAMPLE_ID)_lod0.obj --overwrite
	@ls -l out

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m pytest benchmarks --benchmark-only --benchmark-columns=min,median,mean,rounds -q

# Rebuild the bundled sample dataset (deterministic; needs the test extra for zmesh).
sample: $(STAMP)
	rm -rf src/mesh_export/data/sample
	$(BIN)/python -m mesh_export.datasets.precomputed src/mesh_export/data/sample

clean:
	rm -rf $(VENV) out .pytest_cache .benchmarks
