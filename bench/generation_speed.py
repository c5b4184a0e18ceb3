"""Generation side by side: the reference studies' per-example loop against the workflow's paths,
on the same prompts in one run; and the phase times of a run from its `benchmarks/` files.

    python bench/generation_speed.py --model resources/models/smollm2-135m-instruct \\
        --eval results/data/aclsum/eval.jsonl            # the default evaluation: 20 prompts, 128 new tokens
    python bench/generation_speed.py --root /path/to/a/run --skip-generation   # phase times only

Paths, each one `lora_study.model.generation.generate` call over every prompt (greedy, the
config's prompt builder, the model loaded once and shared):

- `per-example`: one prompt per generate() call, no padding, transformers' growing cache (the
  reference studies' loop);
- `batch 8`: the workflow's path before issue 16 (evaluation.batch_size 8, dynamic cache);
- `all, dynamic` and `all, static`: every prompt in one call, with the growing cache or
  transformers' static cache (evaluation.batch_size all, evaluation.cache);
- `all, prefilled, generate()`: every prompt in one call with the prefilled cache
  (`lora_study.model.prefill`), decoded by transformers' generate() (the default from 454dc27 to
  0d3a874);
- `all, prefilled`: the same cache, decoded by the greedy loop that drops each row at its stop
  token (`lora_study.model.greedy`): what the default config does with the default evaluation
  (batch_size 32 >= 20 prompts);
- `--compile` adds `all, static, compiled` (evaluation.compile true: minutes of compilation
  on a CPU, counted in its time).

For each: generated tokens, seconds, tokens/s, process CPU seconds, and the ratios against the
per-example loop and against `batch 8`, by wall clock and by CPU time (which a loaded machine
distorts less); then whether every path's predictions equal the
per-example loop's. The load average before and after says whether the machine was quiet.
`--root` prints, from a run's `benchmarks/{rule}/...tsv` files (Snakemake's `benchmark:`),
each rule's jobs and seconds and the study's phases.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

# Rule -> phase of the study, for the phase table (rules without a benchmark file are light).
PHASES = {
    "prepare_model": "model",
    "generate_predictions": "evaluation",
    "generate_variant_predictions": "evaluation",
    "train_adapter": "training",
    "train_full": "training",
    "measure_latency": "quantisation",
    "generate_quant_predictions": "quantisation",
    "measure_base_features": "drift",
    "measure_drift": "drift",
    "measure_weight_drift": "drift",
    "mitigate_intruders": "drift",
}


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" ({os.cpu_count()} cores)"


def phase_times(root: Path) -> None:
    """Each rule's jobs and summed seconds (and CPU seconds) from a run's benchmark files."""
    folder = root / "benchmarks"
    if not folder.is_dir():
        raise SystemExit(f"{folder}: no benchmarks folder (a run's root holds one)")
    per_rule: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for path in sorted(folder.rglob("*.tsv")):
        rule = path.relative_to(folder).parts[0]
        with open(path, encoding="utf-8") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                per_rule[rule].append((float(row["s"]), float(row.get("cpu_time") or "nan")))
    print(f"phase times from {folder} (jobs with a benchmark file; light jobs have none)")
    print(f"  {'rule':30} {'jobs':>4} {'seconds':>9} {'cpu s':>9}")
    phases: dict[str, float] = defaultdict(float)
    for rule, rows in sorted(per_rule.items(), key=lambda item: -sum(s for s, _ in item[1])):
        seconds = sum(s for s, _ in rows)
        phases[PHASES.get(rule, "other")] += seconds
        print(f"  {rule:30} {len(rows):4d} {seconds:9.1f} {sum(c for _, c in rows):9.1f}")
    print(f"  {'phase':30} {'':4} {'seconds':>9} {'minutes':>9}")
    for phase, seconds in sorted(phases.items(), key=lambda item: -item[1]):
        print(f"  {phase:30} {'':4} {seconds:9.1f} {seconds / 60:9.1f}")
    total = sum(phases.values())
    print(f"  {'all benchmarked jobs':30} {'':4} {total:9.1f} {total / 60:9.1f}")


def generation_paths(compile_too: bool) -> dict[str, dict[str, Any]]:
    paths = {
        "per-example": {"batch_size": 1, "cache": "dynamic", "compile_mode": "false"},
        "batch 8": {"batch_size": 8, "cache": "dynamic", "compile_mode": "false"},
        "all, dynamic": {"batch_size": "all", "cache": "dynamic", "compile_mode": "false"},
        "all, static": {"batch_size": "all", "cache": "static", "compile_mode": "false"},
        "all, prefilled, generate()": {
            "batch_size": "all",
            "cache": "prefilled",
            "compile_mode": "false",
            "transformers_loop": True,
        },
        "all, prefilled": {"batch_size": "all", "cache": "prefilled", "compile_mode": "false"},
    }
    if compile_too:
        paths["all, static, compiled"] = {"batch_size": "all", "cache": "static", "compile_mode": "true"}
    return paths


def generation_speed(args: argparse.Namespace) -> None:
    import torch

    from lora_study.core.config import load_config
    from lora_study.core.data import read_examples
    from lora_study.model.generation import generate
    from lora_study.model.loading import load_model, load_tokenizer
    from lora_study.model.prompts import PromptBuilder

    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_config(REPO / "config.yaml")
    tokenizer = load_tokenizer(args.model)
    model = load_model(model_dir=args.model, device="cpu", dtype=torch.float32)
    builder = PromptBuilder.from_config(tokenizer=tokenizer, prompt=config["prompt"])
    examples = read_examples(args.eval)[: args.examples]
    prompts = [builder.build(example.input) for example in examples]
    new_tokens = args.new_tokens or config["generation"]["max_new_tokens"]
    settings = {**config["generation"], "max_new_tokens": new_tokens, "greedy": True}
    print(
        f"{len(prompts)} prompts ({min(len(p.input_ids) for p in prompts)}-{max(len(p.input_ids) for p in prompts)} "
        f"tokens), at most {new_tokens} new tokens, greedy, float32, {torch.get_num_threads()} torch threads"
    )
    print(f"load average before: {load_average()}")
    results: dict[str, tuple[list[str], int, float, float]] = {}
    for name, options in generation_paths(args.compile).items():
        cpu_started, started = time.process_time(), time.perf_counter()
        generations = generate(model=model, tokenizer=tokenizer, prompts=prompts, settings=settings, **options)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        tokens = sum(g.generated_tokens for g in generations)
        results[name] = ([g.text for g in generations], tokens, seconds, cpu)
        print(f"  {name:28} {tokens:5d} tokens {seconds:7.1f} s {tokens / seconds:6.1f} tokens/s  cpu {cpu:7.1f} s")
    reference, today = results["per-example"], results["batch 8"]
    # Per CPU second too: on a loaded machine the wall clock also counts time spent waiting for
    # a core, which differs between paths run minutes apart; CPU time does not.
    print(
        f"{'path':28} {'tokens/s':>8} {'x per-example':>13} {'x batch 8':>9} "
        f"{'tokens/cpu-s':>12} {'x per-example':>13} {'x batch 8':>9}  same predictions as per-example"
    )
    for name, (texts, tokens, seconds, cpu) in results.items():
        speed, per_cpu = tokens / seconds, tokens / cpu
        same = sum(a == b for a, b in zip(texts, reference[0], strict=True))
        print(
            f"{name:28} {speed:8.1f} {speed / (reference[1] / reference[2]):13.2f} "
            f"{speed / (today[1] / today[2]):9.2f} {per_cpu:12.1f} {per_cpu / (reference[1] / reference[3]):13.2f} "
            f"{per_cpu / (today[1] / today[3]):9.2f}  {same}/{len(texts)}"
        )
    print(f"load average after: {load_average()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO / "resources/models/smollm2-135m-instruct")
    parser.add_argument("--eval", type=Path, default=REPO / "results/data/aclsum/eval.jsonl")
    parser.add_argument("--examples", type=int, default=20, help="evaluation prompts (the first N)")
    parser.add_argument(
        "--new-tokens",
        type=int,
        default=0,
        help="new tokens at most per prompt (0: config.yaml's, the default evaluation)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--compile", action="store_true", help="also time the compiled static-cache path")
    parser.add_argument("--root", type=Path, default=None, help="a run's folder: print its phase times")
    parser.add_argument("--skip-generation", action="store_true", help="phase times only")
    args = parser.parse_args()
    if not args.skip_generation:
        generation_speed(args)
    if args.root:
        phase_times(args.root)


if __name__ == "__main__":
    main()
