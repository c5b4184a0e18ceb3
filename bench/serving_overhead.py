"""Serving overhead and multi-adapter serving, side by side in one process and one run.

    python bench/serving_overhead.py --root RUN                  # a finished default run's folder
    python bench/serving_overhead.py --root RUN --variant lora-r8-qv-n100-s1 --repeats 8

The workflow times each serving mode in its own job; here the base, the merged export and
the unmerged adapter of one variant are loaded together and their timed passes interleaved
(base, merged, unmerged, base, ...) at every batch size, so a change of machine load hits
every mode alike. Then every LoRA adapter of the run is served together three ways (mixed
batches, grouped by adapter, one merged model each), as the workflow's multi-adapter job
does. Prints the overhead of the unmerged adapter per batch size with its interval
(lora_study.stages.serving.summary), the multi-adapter throughput, latency and memory, and
whether any timed call was taken under load. Settings come from config.yaml's `serving`
block unless given. Needs the run's merged exports (rule merge_adapter).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import numpy as np
import torch

from lora_study.core.config import load_config
from lora_study.core.grid import VariantSpec
from lora_study.core.provenance import cpu_model
from lora_study.core.results import read_result
from lora_study.model.timing import summarise
from lora_study.stages.serving.engine import Call, serve_once, served_requests
from lora_study.stages.serving.modes import load_mode
from lora_study.stages.serving.multi_adapter import serve_multi_adapter
from lora_study.stages.serving.summary import multi_adapter_table, outcome, overhead_interval

MODES = ("base", "merged", "unmerged")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="folder of a finished run (resources/, results/)")
    parser.add_argument("--configfile", type=Path, nargs="*", default=[], help="overlays on config.yaml")
    parser.add_argument("--variant", help="the LoRA variant to compare merged and unmerged (default: the first)")
    parser.add_argument("--batch-sizes", type=int, nargs="+")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--new-tokens", type=int)
    parser.add_argument("--max-prompt-tokens", type=int)
    parser.add_argument("--no-multi-adapter", action="store_true")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args()

    config = load_config(REPO / "config.yaml", *args.configfile)
    serving = config["serving"]
    for key in ("batch_sizes", "repeats", "new_tokens", "max_prompt_tokens"):
        if getattr(args, key) is not None:
            serving[key] = getattr(args, key)
    root = args.root.resolve()
    model_dir = next((root / "resources" / "models").iterdir())
    adapters_root = next(p for p in (root / "results" / "adapters" / model_dir.name).iterdir() if p.is_dir())
    dataset = adapters_root.name
    specs = {}
    for train_json in sorted(adapters_root.glob("*/train.json")):
        spec = VariantSpec.from_dict(read_result(train_json)["run"]["spec"])
        if spec.is_lora:
            specs[spec.name] = spec
    if not specs:
        raise SystemExit(f"{adapters_root}: no trained LoRA-family adapter")
    variant = args.variant or next(iter(specs))
    merged_root = root / "results" / "merged" / model_dir.name / dataset
    eval_path = root / "results" / "data" / dataset / "eval.jsonl"
    print(f"machine: {cpu_model()}, {torch.get_num_threads()} torch threads, Python {platform.python_version()}")
    print(
        f"run: {root}; variant {variant}; settings {json.dumps({k: serving[k] for k in sorted(serving) if k != 'merge'})}"
    )

    tokenizer, requests = served_requests(model_dir=model_dir, eval_path=eval_path, config=config)
    weights = {"base": None, "merged": merged_root / variant / "model", "unmerged": adapters_root / variant / "adapter"}
    models = {
        mode: load_mode(
            mode=mode, model_dir=model_dir, weights=weights[mode], spec=specs[variant], model=config["model"]
        ).model
        for mode in MODES
    }
    device = str(next(models["base"].parameters()).device)
    record = {"variant": variant, "settings": serving, "batches": []}
    calls_seen = []
    sizes = serving["batch_sizes"]
    level = 1 - (1 - config["statistics"]["confidence"]) / len(sizes)
    rng = np.random.default_rng(config["statistics"]["seed"])
    print(f"\nOverhead of the unmerged adapter, interleaved passes ({level:.2%} simultaneous intervals):")
    print("mean request latency over the timed passes; overhead = unmerged / merged - 1")
    print(f"{'batch':>5} {'base s':>8} {'merged s':>9} {'unmerged s':>11} {'overhead':>9}  interval            verdict")
    for size in sizes:
        batch = requests[:size]
        passes: dict[str, list[float]] = {mode: [] for mode in MODES}
        for repeat in range(serving["warmup"] + serving["repeats"]):
            for mode in MODES:
                served = serve_once(
                    calls=[Call(model=models[mode], rows=range(size), label=mode)],
                    requests=batch,
                    tokenizer=tokenizer,
                    new_tokens=serving["new_tokens"],
                    device=device,
                )
                if repeat >= serving["warmup"]:
                    passes[mode].append(float(np.mean(served["request_latency_seconds"])))
                    calls_seen.extend(served["calls"])
        interval = overhead_interval(
            unmerged=np.array(passes["unmerged"]),
            merged=np.array(passes["merged"]),
            resamples=config["statistics"]["resamples"],
            rng=rng,
            confidence=level,
            paired=True,  # pass k of every mode ran back to back
        )
        verdict = outcome(interval, limit=serving["max_overhead"])
        means = {mode: summarise(values)["mean"] for mode, values in passes.items()}
        print(
            f"{size:>5} {means['base']:>8.3f} {means['merged']:>9.3f} {means['unmerged']:>11.3f} "
            f"{interval.estimate:>+9.1%}  [{interval.low:+.1%}, {interval.high:+.1%}]  {verdict}"
        )
        record["batches"].append(
            {"batch_size": size, "passes": passes, "overhead": interval.to_dict(), "outcome": verdict}
        )
    del models

    if not args.no_multi_adapter:
        names = list(specs)
        with tempfile.TemporaryDirectory() as scratch:
            out = Path(scratch) / "multi_adapter.json"
            serve_multi_adapter(
                specs=[specs[n] for n in names],
                adapters={n: adapters_root / n / "adapter" for n in names},
                merged={n: merged_root / n / "model" for n in names},
                model_dir=model_dir,
                eval_path=eval_path,
                config={"model": config["model"], "prompt": config["prompt"], "serving": serving},
                out_path=out,
            )
            multi = read_result(out)
        rows = multi_adapter_table(multi)
        record["multi_adapter"] = rows
        print(f"\nSeveral adapters at once ({', '.join(multi['run']['adapters'])}; request i -> adapter i mod k):")
        print(
            f"{'mode':>8} {'batch':>5} {'calls':>5} {'tokens/s':>9} {'p50 s':>7} {'p95 s':>7} {'weights MB':>11} {'peak RSS MB':>12}"
        )
        for row in rows:
            print(
                f"{row['mode']:>8} {row['batch_size']:>5} {row['calls_per_batch']:>5} "
                f"{row['throughput_tokens_per_second']:>9.1f} {row['p50_latency_seconds']:>7.3f} "
                f"{row['p95_latency_seconds']:>7.3f} {row['weight_bytes'] / 1e6:>11.1f} {row['peak_rss_bytes'] / 1e6:>12.1f}"
            )
        for name, reason in multi["run"]["excluded"].items():
            print(f"  left out {name}: {reason}")
        calls_seen.extend(
            call
            for mode in multi["metrics"]["modes"].values()
            for batch in mode["batches"]
            for served in batch["runs"]
            for call in served["calls"]
        )

    others = [call["other_cores"] for call in calls_seen if call["other_cores"] is not None]
    quiet = bool(others) and max(others) <= 0.25
    print(
        f"\nload: other processes used at most {max(others):.2f} cores during a timed call "
        f"({'quiet' if quiet else 'NOT quiet'}: limit 0.25)"
        if others
        else "\nload: not measurable on this OS"
    )
    if args.json:
        record["quiet"] = quiet
        args.json.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
