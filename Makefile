# cratedig: everything a fresh machine needs is installed by these targets. libsndfile ships in the soundfile
# wheel and FFmpeg in the av wheel. Debian's libsndfile1 is installed too where apt-get may run (root): its libFLAC
# decodes FLAC faster than the wheel's copy (tasks/audio/sndfile.py). Without it the wheel's copy is used.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
EXTRAS := test,notebooks,dask
CORPUS ?= $(HOME)/.cache/cratedig-corpus

.PHONY: install demo test test-fast lab bench-accuracy bench-throughput bench-scan bench-long-file bench-similarity clean-data

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	@ldconfig -p 2>/dev/null | grep -q 'libsndfile\.so\.1 ' || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get install -y -qq --no-install-recommends libsndfile1 >/dev/null 2>&1; } \
	  || echo "note: no system libsndfile1; FLAC decodes with the soundfile wheel's slower copy"
	touch $(STAMP)

install: $(STAMP)

demo: install  ## build the demo library, analyse it into data/catalog.duckdb, show results
	$(BIN)/cratedig demo

test: install  ## the whole suite, slow tests included
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow and not prefect_server"

lab: install  ## JupyterLab on the demo catalog
	CRATEDIG_CATALOG=$(CURDIR)/data/catalog.duckdb $(BIN)/jupyter lab --no-browser notebooks/

bench-accuracy: install
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python -m bench.accuracy --corpus $(CORPUS)

bench-throughput: install
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python -m bench.throughput $(CORPUS)/real

bench-scan: install
	$(BIN)/python -m bench.scan

bench-long-file: install
	$(BIN)/python -m bench.long_file

bench-similarity: install
	$(BIN)/python -m bench.similarity

clean-data:
	rm -rf data/demo data/catalog.duckdb data/catalog.duckdb.wal data/parquet
