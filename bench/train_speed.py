"""Training speed on this machine: tokens/s and achieved GFLOP/s against the fp32
matrix-product peak measured in the same run; optionally TRL's SFTTrainer on the same data.

    python bench/train_speed.py                      # LoRA r=8 on q,v; 16 examples
    python bench/train_speed.py --kind fft
    python bench/train_speed.py --compare-trl        # the same run through TRL's SFTTrainer (pip install trl==1.16.0)
    python bench/train_speed.py --compile            # beside it, the decoder under torch.compile

Needs a prepared model and a training subset: `snakemake --cores 2 results/data/aclsum/train-n100.jsonl
resources/models/smollm2-135m-instruct` builds both. The first optimizer step is a warm-up
and is excluded; figures are medians over the remaining steps.

`--compile` trains a second, identically seeded copy with its decoder compiled
(`torch.compile(dynamic=True)`: the batches' widths vary, and a static compile would
recompile for each) and prints its first step, which holds the compilation, and its
steady-state steps beside the eager ones: whether compiling the training step would pay for
itself within one training job.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import torch

from lora_study.core.data import read_examples
from lora_study.core.grid import VariantSpec
from lora_study.model.adapters import attach_adapter
from lora_study.model.flops import matmul_peak_gflops
from lora_study.model.loading import load_model, load_tokenizer
from lora_study.model.prompts import PromptBuilder
from lora_study.model.training import make_item, seed_everything, train_loop

INSTRUCTION = (
    "Summarize the following scientific abstract in 2-3 sentences: the challenge, the approach and the outcome."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default="resources/models/smollm2-135m-instruct")
    parser.add_argument("--train-file", default="results/data/aclsum/train-n100.jsonl")
    parser.add_argument("--examples", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--kind", choices=["lora", "fft"], default="lora")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--compare-trl", action="store_true")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()

    peak = matmul_peak_gflops()
    print(f"fp32 matrix-product peak: {peak:.1f} GFLOP/s ({torch.get_num_threads()} threads)")
    tokenizer = load_tokenizer(args.model_dir)
    builder = PromptBuilder(tokenizer=tokenizer, instruction=INSTRUCTION, chat_template=True, max_input_tokens=512)
    examples = read_examples(args.train_file)[: args.examples]
    items = [make_item(builder=builder, tokenizer=tokenizer, example=e, max_target_tokens=160) for e in examples]
    # megabatch 8: up to 32 examples sorted by length together, as the default config trains.
    settings = {
        "epochs": 1,
        "batch_size": args.batch_size,
        "megabatch": 8,
        "grad_accumulation": 1,
        "warmup_ratio": 0.0,
        "schedule": "constant",
        "weight_decay": 0.0,
        "max_grad_norm": 1.0,
    }
    spec = (
        VariantSpec(
            kind="lora",
            train_size=len(items),
            seed=1,
            learning_rate=2e-4,
            rank=args.rank,
            alpha=2.0 * args.rank,
            dropout=0.05,
            targets="qv",
        )
        if args.kind == "lora"
        else VariantSpec(kind="fft", train_size=len(items), seed=1, learning_rate=2e-5)
    )
    eager = timed_run(
        args=args, items=items, spec=spec, settings=settings, pad_id=tokenizer.pad_token_id, compile=False
    )
    report(label="eager", records=eager, peak=peak, batch_size=args.batch_size)
    if args.compile:
        compiled = timed_run(
            args=args, items=items, spec=spec, settings=settings, pad_id=tokenizer.pad_token_id, compile=True
        )
        report(label="compiled", records=compiled, peak=peak, batch_size=args.batch_size)
        eager_step = statistics.median(r.seconds for r in eager[1:])
        compiled_step = statistics.median(r.seconds for r in compiled[1:])
        extra = compiled[0].seconds - eager[0].seconds
        saved = eager_step - compiled_step
        print(
            f"  compiled vs eager: steady-state step {compiled_step:.2f} s against {eager_step:.2f} s "
            f"({eager_step / compiled_step:.2f}x); first step {compiled[0].seconds:.1f} s against {eager[0].seconds:.1f} s"
        )
        if saved > 0:
            print(f"  compilation pays for itself after {extra / saved:.0f} steps (a default training job has 50)")
        else:
            print("  compilation never pays for itself: the compiled steps are not faster")

    if args.compare_trl:
        compare_trl(args=args, builder=builder, items=items, examples=examples, spec=spec, settings=settings)


def timed_run(*, args, items, spec, settings, pad_id: int, compile: bool) -> list:
    """One training run of `spec` from the same seed; the step records."""
    seed_everything(1)
    model = load_model(model_dir=args.model_dir, device="cpu", dtype=torch.float32)
    if spec.is_lora:
        model = attach_adapter(model=model, spec=spec)
    if compile:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        base.get_decoder().compile(dynamic=True)  # what training.target_loss_sum calls
    return train_loop(
        model=model,
        items=items,
        settings=settings,
        learning_rate=spec.learning_rate,
        seed=1,
        pad_id=pad_id,
        device="cpu",
    )


def report(*, label: str, records: list, peak: float, batch_size: int) -> None:
    timed = records[1:]
    tokens_per_second = statistics.median(r.tokens / r.seconds for r in timed)
    gflops = statistics.median(r.flops / r.seconds / 1e9 for r in timed)
    print(f"{label}: {len(timed)} timed steps of {batch_size} examples (1 warm-up excluded)")
    print(
        f"  lean loop: {tokens_per_second:.1f} tokens/s (median), {gflops:.1f} GFLOP/s achieved = {100 * gflops / peak:.0f}% of peak"
    )
    padded = sum(r.padded_tokens for r in records)
    print(f"  padding: {100 * padded / (padded + sum(r.tokens for r in records)):.1f}% of the batches' positions")
    print(
        f"  step seconds: first {records[0].seconds:.2f}, median {statistics.median(r.seconds for r in timed):.2f}, "
        f"all {[round(r.seconds, 2) for r in timed]}"
    )


def compare_trl(*, args, builder, items, examples, spec, settings) -> None:
    """TRL's SFTTrainer on the same prompts/completions, dtype and checkpointing set for a CPU.
    TRL is not among the project's packages (docs/methods/adapters.md says why): install it
    for this comparison alone."""
    from datasets import Dataset
    from transformers import TrainerCallback

    try:
        from trl import SFTConfig, SFTTrainer
    except ImportError:
        raise SystemExit(
            "--compare-trl needs TRL, which lora-study does not install: pip install trl==1.16.0"
        ) from None

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step_begin(self, *a, **k):
            self.started = time.perf_counter()

        def on_step_end(self, *a, **k):
            self.times.append(time.perf_counter() - self.started)

    data = Dataset.from_list(
        [
            {
                "prompt": builder.render(builder.build(e.input).input_text),
                "completion": builder.completion_text(e.reference),
            }
            for e in examples
        ]
    )
    seed_everything(1)
    tokenizer = load_tokenizer(args.model_dir)
    model = load_model(model_dir=args.model_dir, device="cpu", dtype=torch.float32)
    if spec.is_lora:
        model = attach_adapter(model=model, spec=spec)
    config = SFTConfig(
        output_dir="/tmp/lora-study-trl-bench",
        per_device_train_batch_size=args.batch_size,
        num_train_epochs=1,
        learning_rate=spec.learning_rate,
        lr_scheduler_type="constant",
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        completion_only_loss=True,
        max_length=1024,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        use_cpu=True,
        dataloader_num_workers=0,
        seed=1,
    )
    timer = StepTimer()
    trainer = SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer, callbacks=[timer])
    trainer.train()
    timed = timer.times[1:]
    tokens = sum(len(i.input_ids) for i in items) / len(timer.times)  # mean unpadded tokens per step
    print(
        f"  TRL SFTTrainer: {tokens / statistics.median(timed):.1f} tokens/s (median, unpadded tokens), step seconds {[round(t, 2) for t in timed]}"
    )


if __name__ == "__main__":
    main()
