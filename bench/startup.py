"""Per-job overhead: from process start to a job's first real work.

    python bench/startup.py --model resources/models/smollm2-135m-instruct --repeats 5
    python bench/startup.py --repeats 5 --src /tmp/before/src   # the same at an older commit

Each repeat starts a fresh Python (as Snakemake starts one per job) that does what a rule's
script does before its work: imports its modules, writes nothing. Timed from just before
the parent starts the process to stamps the child prints (wall clock, shared by both):

- torch-free job (score_predictions): its modules imported and `meta_info` built, the last thing
  it does besides scoring;
- model job (generate_predictions): its modules imported (torch, transformers, PEFT), then,
  with --model, the tokenizer and the model loaded: the moment generation could start.

Prints the median and the range of each stamp over --repeats runs, and the load average,
so a reader knows whether the machine was quiet. Snakemake's own per-job cost (its script
preamble, scheduling) comes on top and is the same for both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TORCH_FREE = """
import json, sys, time
stamps = {}
from lora_study.core.io import read_jsonl
from lora_study.core.logs import logged_job
from lora_study.core.provenance import meta_info
from lora_study.core.results import write_result
from lora_study.tasks.scores import predictions_result
meta_info(device="cpu")
stamps["imports done"] = time.time()
stamps["torch imported"] = "torch" in sys.modules
print(json.dumps(stamps))
"""

# Older sources may import torch here: with --src they are timed, not refused.
MODEL = """
import json, sys, time
stamps = {}
from lora_study.model.evaluate import predict
from lora_study.stages.adapters.finetune import variant_loader
from lora_study.core.grid import VariantSpec
from lora_study.core.logs import logged_job
stamps["imports done"] = time.time()
model_dir = sys.argv[1]
if model_dir:
    from lora_study.model.loading import base_loader, load_tokenizer
    load_tokenizer(model_dir)
    base_loader(model_dir=model_dir, model={"device": "cpu", "dtype": "auto"})()
    stamps["model loaded"] = time.time()
print(json.dumps(stamps))
"""


def run_once(code: str, *args: str, src: Path = REPO / "src", torch_free: bool = True) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    started = time.time()
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=False)
    ended = time.time()
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    stamps = json.loads(done.stdout.strip().splitlines()[-1])
    seconds = {name: value - started for name, value in stamps.items() if isinstance(value, float)}
    seconds["process exit"] = ended - started
    if stamps.get("torch imported") and torch_free:
        raise SystemExit("the torch-free job imported torch")
    return seconds


def report(name: str, runs: list[dict[str, float]]) -> None:
    print(f"{name} ({len(runs)} runs): seconds from process start")
    for stamp in runs[0]:
        values = [run[stamp] for run in runs]
        print(f"  {stamp:14} median {statistics.median(values):6.2f}  min {min(values):6.2f}  max {max(values):6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="a prepared model folder (resources/models/...)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--src", type=Path, default=REPO / "src", help="lora_study sources to time (an older checkout's src/: before)"
    )
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    print(f"sources: {args.src}")
    source = {"src": args.src, "torch_free": args.src == REPO / "src"}
    run_once(TORCH_FREE, **source)  # warm the page cache for both, as a workflow's later jobs find it
    run_once(MODEL, "", **source)
    report(
        "torch-free job (score_predictions's imports)", [run_once(TORCH_FREE, **source) for _ in range(args.repeats)]
    )
    model = str(args.model or "")
    report(
        "model job (generate_predictions' imports" + (", tokenizer and model load)" if model else ")"),
        [run_once(MODEL, model, **source) for _ in range(args.repeats)],
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
