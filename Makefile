# The two commands of the README:
#   make book   environment + data + notebooks (papermill) + HTML book
#   make test   unit tests + notebooks in the ci profile + book build check
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
# torch: a version both 2.13 (CPU machines) and 2.11 (the GPU machine) satisfy.
# Installed first and pinned, so that no step pulls a multi-GB CUDA build on a CPU
# machine; set TORCH_INDEX=https://download.pytorch.org/whl/cpu where PyPI's default
# Linux wheel would be the CUDA one.
TORCH   ?= torch==2.13.0
TORCH_INDEX ?=
# book on a CUDA machine, quick otherwise
PROFILE ?= $(shell $(PY) -c "import torch; print('book' if torch.cuda.is_available() else 'quick')" 2>/dev/null || echo quick)
JB_FLAGS := -W -n --keep-going


.PHONY: help venv data notebooks stage book html publish test unit nbtest nbval nbref booktest browsercheck lint clean

help:
	@echo "make book   build the book (profile: $(PROFILE)); make test   run all tests"
	@echo "make html   build the published record's HTML without running anything"

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -q -e ".[book,dev]"
	$(PY) -m pip install -q -e ".[peer]" || echo "muspectre not installable here: its peer test will be skipped"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (dmtnn)" >/dev/null
	touch $@

venv: $(VENV)/.installed

data: venv
	$(PY) -m dmtnn.data --profile $(PROFILE)

notebooks: data
	$(PY) -m dmtnn.pipeline --profile $(PROFILE)

# Stage executed notebooks for Jupyter Book: SRC is a run's folder or published/.
SRC ?= artifacts/$(PROFILE)/notebooks
# Also draws the diagrams (Figs. 1, 2, 3, 8) and the comparison table from the code.
stage:
	@test -n "$$(ls $(SRC)/*.ipynb 2>/dev/null)" || { echo "no executed notebooks in $(SRC)"; exit 1; }
	rm -rf book/notebooks && mkdir -p book/notebooks && cp $(SRC)/*.ipynb book/notebooks/
	$(PY) -m dmtnn.diagrams book/figures
	$(PY) -m dmtnn.comparison book/figures/comparison_table.md --verdicts book/figures/verdict_box.md
	$(PY) -m dmtnn.config book/figures/profiles_table.md
	$(PY) -m dmtnn.data --rock-table book/figures/rocks_table.md
	$(PY) -m dmtnn.pipeline --summary book/notebooks book/figures/run_summary.md
	$(VENV)/bin/dmtnn weights list --markdown > book/figures/weights_table.md

book: notebooks
	$(MAKE) --no-print-directory stage SRC=artifacts/$(PROFILE)/notebooks
	$(VENV)/bin/jupyter-book build . $(JB_FLAGS)
	$(PY) -m dmtnn.bookcheck _build/html

# The published record, committed in published/ (each notebook's run stamp says which
# profile and machine made it): built without executing anything.
html: venv
	$(MAKE) --no-print-directory stage SRC=published
	$(VENV)/bin/jupyter-book build . $(JB_FLAGS)
	$(PY) -m dmtnn.bookcheck _build/html

# Replace the published record with this machine's run of PROFILE (by hand, on purpose).
publish:
	@test -n "$$(ls artifacts/$(PROFILE)/notebooks/*.ipynb 2>/dev/null)" || { echo "no run of $(PROFILE) to publish"; exit 1; }
	rm -rf published && mkdir -p published && cp artifacts/$(PROFILE)/notebooks/*.ipynb published/

unit: venv
	$(PY) -m pytest tests -q
	$(PY) -m pytest --doctest-modules src/dmtnn -q -p no:cacheprovider

nbtest: venv
	$(PY) -m dmtnn.pipeline --profile ci

# nbval re-executes the ci notebooks and compares the cells marked
# # NBVAL_CHECK_OUTPUT with the references in tests/notebooks/: the data, the FEM
# labels and the parameter counts, which are bit-reproducible. Trained results are
# not checked: they no longer change with the thread count (each network trains on
# Config.train_threads: dmtnn.parallel; 1 vs 2 threads used to move the ci DMTNN's
# test R2 of phi from -2.18 to -2.93), but oneDNN picks its kernels by the CPU's
# instruction set, so another CPU may round them otherwise. After an intended change:
# `make nbref` and commit tests/notebooks/.
nbval: nbtest
	DMTNN_PROGRESS=0 $(PY) -m pytest -q -p no:cacheprovider --nbval-lax \
		--nbval-sanitize-with tests/notebooks/sanitize.cfg tests/notebooks

nbref: nbtest
	$(PY) -m dmtnn.pipeline --profile ci --reference tests/notebooks

booktest: nbtest
	rm -rf _build
	$(MAKE) --no-print-directory stage SRC=artifacts/ci/notebooks
	$(VENV)/bin/jupyter-book build . $(JB_FLAGS)
	$(PY) -m dmtnn.bookcheck _build/html
	$(MAKE) --no-print-directory browsercheck

# Every page of the built book in headless Chromium, offline: fails on a console error,
# an image that does not load, raw TeX, a text output wider than its column; one
# screenshot per page in _build/screenshots. Needs Debian's chromium and chromium-driver
# (`apt-get install chromium chromium-driver`; .ci/run installs them).
browsercheck: venv
	$(PY) -m dmtnn.browsercheck _build/html --screenshots _build/screenshots

test: lint unit nbval booktest

lint: venv
	$(VENV)/bin/ruff check src tests bench notebooks

clean:
	rm -rf _build book/notebooks book/figures
