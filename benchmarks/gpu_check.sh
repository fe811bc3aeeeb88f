#!/usr/bin/env bash
# GPU checks (CUDA path, cuDNN parity, bf16 autocast, training steps, beam search); under 5 minutes
# on a GPU machine. Needs a Python with torch (CUDA build) and this package installed, e.g.
#   pip install -c constraints.txt -e . && bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
PYTHONPATH=. exec "$PY" benchmarks/gpu_check.py --device cuda
