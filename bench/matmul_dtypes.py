"""Matrix-product throughput per dtype at the model's own Linear shapes, side by side in one run.

    python bench/matmul_dtypes.py --model-dir resources/models/smollm2-135m-instruct --threads 2

Whether lower-precision arithmetic would make the study faster on this machine: the study
runs float32 on a CPU (model.dtype auto), and a 16-bit default is worth discussing only
where the CPU multiplies 16-bit matrices faster than float32 ones. CPUs differ here (AMX
tiles multiply bfloat16 several times faster than float32; AVX-512 without AMX may not), so
this measures rather than assumes.

Shapes: every distinct (in, out) of the model's decoder Linear layers and its output head,
read from the model's config, at three row counts: a training batch (4 rows x the mean
training length, about 1,400 tokens), a batched decoding step (20 rows, the default
evaluation) and one row (per-example decoding). Each figure is the median of `--repeats`
timed products after `--warmup` untimed ones; GFLOP/s = 2 x rows x in x out / seconds.
The totals weight each shape by how often a forward pass multiplies by it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def linear_shapes(*, model_dir: Path) -> dict[tuple[int, int], int]:
    """(in, out) of each decoder Linear and the output head -> products per forward pass."""
    config = json.loads((model_dir / "config.json").read_text())
    hidden, inner, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
    kv = config.get("num_key_value_heads", config["num_attention_heads"]) * head_dim
    q = config["num_attention_heads"] * head_dim
    counts: dict[tuple[int, int], int] = {}
    # q, k, v, o, gate, up, down of every block, then the output head once.
    for shape in [
        (hidden, q),
        (hidden, kv),
        (hidden, kv),
        (q, hidden),
        (hidden, inner),
        (hidden, inner),
        (inner, hidden),
    ]:
        counts[shape] = counts.get(shape, 0) + layers
    counts[(hidden, config["vocab_size"])] = counts.get((hidden, config["vocab_size"]), 0) + 1
    return counts


def seconds_per_product(*, rows: int, shape: tuple[int, int], dtype: torch.dtype, warmup: int, repeats: int) -> float:
    activations = torch.randn(rows, shape[0]).to(dtype)
    weight = torch.randn(shape[1], shape[0]).to(dtype)  # nn.Linear's (out, in) layout
    for _ in range(warmup):
        torch.nn.functional.linear(activations, weight)
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        torch.nn.functional.linear(activations, weight)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Path("resources/models/smollm2-135m-instruct"))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--rows", type=int, nargs="+", default=[1400, 20, 1])
    parser.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES), default=["float32", "bfloat16"])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    counts = linear_shapes(model_dir=args.model_dir)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.model_dir.name}: {len(counts)} shapes")
    header = f"{'rows':>5} {'in x out':>12} {'per pass':>8}" + "".join(
        f" {name + ' GFLOP/s':>17}" for name in args.dtypes
    )
    for rows in args.rows:
        print(header)
        totals = dict.fromkeys(args.dtypes, 0.0)
        for shape, count in counts.items():
            line = f"{rows:>5} {f'{shape[0]} x {shape[1]}':>12} {count:>8}"
            for name in args.dtypes:
                seconds = seconds_per_product(
                    rows=rows, shape=shape, dtype=DTYPES[name], warmup=args.warmup, repeats=args.repeats
                )
                totals[name] += count * seconds
                line += f" {2 * rows * shape[0] * shape[1] / seconds / 1e9:>17.1f}"
            print(line)
        flops = sum(2 * rows * shape[0] * shape[1] * count for shape, count in counts.items())
        summary = ", ".join(
            f"{name} {1e3 * totals[name]:.1f} ms ({flops / totals[name] / 1e9:.1f} GFLOP/s)" for name in args.dtypes
        )
        relative = ", ".join(
            f"{name} {totals['float32'] / totals[name]:.2f}x"
            for name in args.dtypes
            if name != "float32" and "float32" in totals
        )
        print(
            f"  one forward pass's products at {rows} rows: {summary}"
            + (f"; speed vs float32: {relative}" if relative else "")
        )


if __name__ == "__main__":
    main()
