#!/usr/bin/env bash
# Every benchmark except Keras (that one needs its own venv: benchmarks/bench_keras.py), in about
# 15 minutes once the two models exist. Each script measures its variants side by side in one process and prints its own table.
#   bash benchmarks/run_all.sh [PYTHON]        (default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-.venv/bin/python}"
run() { echo; echo "\$ $PY $*"; "$PY" "$@"; }
run benchmarks/bench_lstm.py --threads 1 --rounds 7
run benchmarks/bench_classifier.py --threads 1 2 --rounds 15
run benchmarks/bench_batching.py --threads 1 --rounds 5
run benchmarks/bench_encode.py --rounds 3 --spacy-rounds 1 --profile
run benchmarks/bench_encode.py --memory --memory-modes stream   # add arrow for the default path (+8 min)
# classify throughput needs the sentiment model: train it first on a clean clone (skipped when unchanged)
[ -f runs/sentiment/model/config.json ] || .venv/bin/nlp-lstm run pipelines/sentiment.toml --quiet
run benchmarks/bench_classify.py --threads 1 --rounds 5 --clock cpu
# summarizer decode throughput needs the descriptions model: train it first on a clean clone (skipped when unchanged)
[ -f runs/descriptions/model/config.json ] || .venv/bin/nlp-lstm run pipelines/descriptions.toml --quiet
run benchmarks/bench_decode.py --threads 1 --texts 256 --rounds 3
