# cratedig: everything a fresh machine needs is installed by these targets (no system packages:
# libsndfile ships in the soundfile wheel, FFmpeg in the av wheel).
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
	$(BIN)/python bench/accuracy.py --corpus $(CORPUS)

bench-throughput: install
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python bench/throughput.py $(CORPUS)/real

bench-scan: install
	$(BIN)/python bench/scan.py

bench-long-file: install
	$(BIN)/python bench/long_file.py

bench-similarity: install
	$(BIN)/python bench/similarity.py

clean-data:
	rm -rf data/demo data/catalog.duckdb data/catalog.duckdb.wal data/parquet
