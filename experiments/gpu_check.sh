#!/usr/bin/env bash
# The GPU check of issue 20: a real-size base training step in bf16 with torch.compile, a reverse pass, the benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
nvidia-smi --query-gpu=name,memory.total --format=csv || true
"$PY" experiments/gpu_check.py --device cuda --size 256 --batch 4 --net base
"$PY" experiments/bench.py --device cuda --csv bench_gpu.csv
