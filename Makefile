# The README's two commands call `make demo` and `make test`; both set everything up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_ROOT := demo/dataset
DEMO_OUT := reports/demo

IMAGEDEDUP_VENV := bench/.venv-imagededup

.PHONY: help setup setup-dev browser demo lint test test-fast bench bench-large bench-data bench-env bench-fidelity app clean

help:
	@echo "make demo      set up .venv, build the demo dataset from scikit-learn's images, scan it"
	@echo "make test      set up .venv with the dev extras (and Debian's chromium), run ruff and mypy, then the whole test suite"
	@echo "make lint      ruff (lint and format check) and mypy only"
	@echo "make app       set up and start the Streamlit app (streamlit run app.py)"
	@echo "make bench     print the benchmark figures (bench/): scan throughput, search time, duplicate quality"
	@echo "make bench-large  cold and warm scans, decode limit and peak memory at 1,000,000 small files (minutes, ~5 GB of disk)"
	@echo "make bench-fidelity  the audit's verdicts against TensorFlow on 1,000+ real test images"
	@echo "make bench-env build bench/.venv-imagededup (imagededup + torch) for the comparison in make bench"
	@echo "make clean     remove .venv, demo/ and generated reports"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# A stamp per extra set: re-installs only when pyproject.toml changes.
$(VENV)/.stamp-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[demo]'
	touch $@

$(VENV)/.stamp-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev,demo]'
	touch $@

setup: $(VENV)/.stamp-demo
setup-dev: $(VENV)/.stamp-dev browser

# Debian's Chromium for the app's end-to-end test: Playwright drives it by path and never
# downloads a browser. Installed with apt as root (or through sudo); elsewhere the test skips.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: chromium is not installed and cannot be (no root): the browser test will be skipped"; fi; }

demo: setup
	rm -rf $(DEMO_ROOT)
	$(BIN)/python -m audit demo $(DEMO_ROOT)
	@# Exit 1 only means "findings at or above --fail-on": the demo has them on purpose.
	$(BIN)/python -m audit scan $(DEMO_ROOT) --out $(DEMO_OUT) || [ $$? -eq 1 ]

# Lint, format and types first (seconds), then the suite.
lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

app: $(VENV)/.stamp-dev
	$(BIN)/python -m streamlit run app.py

test-fast: lint
	$(BIN)/python -m pytest -m "not slow"

# scan_throughput: cold, warm-unchanged and warm-1%-changed scans of 20,000 photos, the
# decode limit and their ratios, from one run.
bench: setup-dev bench-data
	$(BIN)/python bench/scan_throughput.py --images 20000
	$(BIN)/python bench/search_speed.py
	$(BIN)/python bench/near_duplicates_quality.py $(if $(wildcard $(IMAGEDEDUP_VENV)/bin/python),--imagededup-python $(IMAGEDEDUP_VENV)/bin/python)
	$(BIN)/python bench/near_duplicates_quality.py --mirror
	$(BIN)/python bench/tiny_dataset_conflicts.py

# A million small PNGs, generated once under $TMPDIR/image-audit-bench (about 5 GB).
bench-large: setup-dev
	$(BIN)/python bench/cache_and_memory.py --rss-images 1000000

# The real pictures of the duplicate benchmarks (bench/real_photos.py): Debian's wallpaper
# packages (apt, as root or through sudo) and scikit-image's bundled images, unpacked into
# bench/.skimage without entering the project's environment.
bench-data: setup-dev
	@if [ ! -d /usr/share/wallpapers ] || [ ! -d /usr/share/desktop-base ]; then \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$( [ "$$(id -u)" = 0 ] || echo sudo ) \
			apt-get install -y -qq plasma-workspace-wallpapers desktop-base \
		|| echo "bench-data: could not install plasma-workspace-wallpapers and desktop-base: the benchmarks run on fewer pictures"; \
	fi
	@[ -d bench/.skimage/skimage/data ] || $(BIN)/python -m pip install -q --no-deps --target bench/.skimage scikit-image

# Fetches the image libraries' source packages once into bench/.fidelity-cache/ (pip).
bench-fidelity: setup-dev
	$(BIN)/python bench/tf_fidelity.py

# imagededup (and the torch it imports) live only in the benchmark's own environment.
bench-env:
	$(PYTHON) -m venv $(IMAGEDEDUP_VENV)
	$(IMAGEDEDUP_VENV)/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1 imagededup

clean:
	rm -rf $(VENV) demo $(DEMO_OUT)
