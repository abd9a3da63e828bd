# cratedig: everything a fresh machine needs is installed by these targets. libsndfile ships in the soundfile
# wheel and FFmpeg in the av wheel. Debian's libsndfile1 is installed too where apt-get may run (root): its libFLAC
# decodes FLAC faster than the wheel's copy (tasks/audio/sndfile.py). Without it the wheel's copy is used.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
EXTRAS := test,notebooks,dask
CORPUS ?= $(HOME)/.cache/cratedig-corpus
DEVSET ?= $(CORPUS)/devset
WINDS ?= $(CORPUS)/winds-check
# music21 (the scores) lives in its own venv: the dev set's renderer needs it, cratedig does not. Pinned: its
# corpus is the dev set's source, and the held-out halves are counted in its lists.
DEVSET_VENV := $(CORPUS)/devset-venv
DEVSET_DEBS := fluidsynth fluid-soundfont-gm timgm6mb-soundfont musescore-general-soundfont

.PHONY: help install lock lint demo test test-fast lab devset winds-check bench-devset bench-accuracy bench-throughput bench-scan \
        bench-long-file bench-similarity clean-data
.DEFAULT_GOAL := help

help:  ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# requirements.lock pins every package (all extras) to the versions the suite was run with: a fresh machine
# installs those, not whatever is newest that day. `make lock` regenerates it after a dependency change.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[$(EXTRAS)]'
	@ldconfig -p 2>/dev/null | grep -q 'libsndfile\.so\.1 ' || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get install -y -qq --no-install-recommends libsndfile1 >/dev/null 2>&1; } \
	  || echo "note: no system libsndfile1; FLAC decodes with the soundfile wheel's slower copy"
	touch $(STAMP)

install: $(STAMP)  ## create .venv with the locked versions (and Debian's libsndfile1 where possible)

lock: install  ## regenerate requirements.lock from pyproject.toml (needs PyPI)
	$(BIN)/python -m pip install -q uv
	$(BIN)/uv pip compile pyproject.toml --extra test --extra notebooks --extra dask --extra bench \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 -q -o requirements.lock

lint: install  ## ruff: lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

demo: install  ## build the demo library, analyse it into data/catalog.duckdb, show results
	$(BIN)/cratedig demo

test: install  ## the whole suite, slow tests included
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile

test-fast: install  ## the suite without the slow and Prefect-server tests
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile -m "not slow and not prefect_server"

lab: install  ## JupyterLab on the demo catalog (also as root, as in a container)
	CRATEDIG_CATALOG=$(CURDIR)/data/catalog.duckdb $(BIN)/jupyter lab --no-browser \
	  $$([ "$$(id -u)" = 0 ] && echo --allow-root) notebooks/

devset: $(DEVSET)/ground_truth.csv  ## the development set with ground truth (bench/devset_build.py) into ~/.cache/cratedig-corpus/devset (CORPUS=DIR to move it)

# Rebuilt when its builder changes (existing renderings are kept), not when the venv is reinstalled.
$(DEVSET)/ground_truth.csv: bench/devset_build.py bench/devset_scores.py bench/devset_parts.py bench/devset_midi.py \
                            bench/devset_synth.py | $(STAMP)
	@dpkg -s $(DEVSET_DEBS) >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq \
	  && apt-get install -y -qq --no-install-recommends $(DEVSET_DEBS) >/dev/null; } \
	  || { echo "the dev set needs: apt-get install $(DEVSET_DEBS)"; exit 1; }
	test -x $(DEVSET_VENV)/bin/python || $(PYTHON) -m venv $(DEVSET_VENV)
	$(DEVSET_VENV)/bin/python -m pip install -q 'music21==10.5.1'
	$(DEVSET_VENV)/bin/python -m bench.devset_build $(DEVSET)
	$(BIN)/python -m bench.devset_synth $(DEVSET)

winds-check: $(WINDS)/ground_truth.csv  ## the woodwind-quartet chorales check set (bench/devset_winds.py) into ~/.cache/cratedig-corpus/winds-check

# Rendered with the dev set's venv; rebuilt when the dev set's choice of chorales may have changed.
$(WINDS)/ground_truth.csv: bench/devset_winds.py $(DEVSET)/ground_truth.csv
	test -x $(DEVSET_VENV)/bin/python || $(PYTHON) -m venv $(DEVSET_VENV)
	$(DEVSET_VENV)/bin/python -m pip install -q 'music21==10.5.1'
	$(DEVSET_VENV)/bin/python -m bench.devset_winds build $(WINDS) --devset $(DEVSET)

bench-devset: devset $(WINDS)/ground_truth.csv  ## tempo and key per family of the dev set, peers in the same run; key settings chosen LOFO
	$(BIN)/python -m pip install -q -c requirements.lock -e ".[bench]"
	$(BIN)/python -m bench.devset_eval $(DEVSET) --madmom-every 10
	$(BIN)/python -m bench.devset_lofo $(DEVSET)
	$(BIN)/python -m bench.devset_octave $(DEVSET)
	$(BIN)/python -m bench.devset_octave_grid $(DEVSET)
	$(BIN)/python -m bench.devset_octave_probes $(DEVSET)
	$(BIN)/python -m bench.arhythmic $(DEVSET)
	$(BIN)/python -m bench.devset_degraded $(DEVSET)
	$(BIN)/python -m bench.devset_winds eval $(WINDS)

bench-accuracy: install bench-devset  ## the dev set, then tempo and key against peers (writes bench/RESULTS.md)
	$(BIN)/python -m pip install -q -c requirements.lock -e ".[bench]"
	$(BIN)/python -m bench.accuracy --corpus $(CORPUS)
	$(BIN)/python -m bench.game_checks $(CORPUS) --peers

bench-throughput: install  ## per-stage CPU, tracks/min, RSS on the corpus
	$(BIN)/python -m pip install -q -c requirements.lock -e ".[bench]"
	$(BIN)/python -m bench.throughput $(CORPUS)/real

bench-scan: install  ## first scan and no-op rescan of 100,000 files
	$(BIN)/python -m bench.scan

bench-long-file: install  ## a 2-hour mix: CPU, peak RSS, tempo, key
	$(BIN)/python -m bench.long_file

bench-similarity: install  ## top-10 latency at 10k/100k/1M tracks, precision@5
	$(BIN)/python -m bench.similarity

clean-data:  ## remove the demo library, catalog and Parquet
	rm -rf data/demo data/catalog.duckdb data/catalog.duckdb.wal data/catalog.duckdb.lock data/catalog.duckdb.work data/parquet
