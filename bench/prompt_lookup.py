"""How many forward passes greedy prompt-lookup decoding would need for a run's predictions.

    python bench/prompt_lookup.py --root /path/to/a/run            # every evaluated variant
    python bench/prompt_lookup.py --root . --drafts 4 10

Prompt-lookup decoding drafts the next tokens by finding the answer's last n tokens earlier
in the prompt or the answer (n = 3, then 2, then 1; the latest match) and copying what
followed; one forward pass then checks the whole draft, and greedy decoding keeps the drafted
tokens up to the first one the model would not have chosen, plus the model's own next token.
So the answers are greedy decoding's; what changes is the number of forward passes. This
replays the lookup on the answers the run generated (its predictions.jsonl, re-tokenised)
and counts the passes it would take, per variant: tokens per pass is the most a decoding
step could gain, before the cost of checking several tokens per pass. `tokens` (the stop
token included) is also the passes plain greedy decoding takes. Nothing is generated.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from lora_study.core.config import load_config
from lora_study.core.data import read_examples
from lora_study.core.io import read_jsonl
from lora_study.model.loading import load_tokenizer
from lora_study.model.prompts import PromptBuilder


def draft(*, context: Sequence[int], length: int) -> list[int]:
    """The tokens that followed the latest earlier occurrence of the context's last 3 (then
    2, then 1) tokens, at most `length`; empty when none occurs."""
    for n in (3, 2, 1):
        if len(context) <= n:
            continue
        tail = list(context[-n:])
        for start in range(len(context) - n - 1, -1, -1):
            if list(context[start : start + n]) == tail:
                return list(context[start + n : start + n + length])
    return []


def passes(*, prompt: Sequence[int], answer: Sequence[int], length: int) -> int:
    """Forward passes greedy prompt-lookup decoding takes to produce `answer` after `prompt`."""
    context, done, count = list(prompt), 0, 0
    while done < len(answer):
        proposed = draft(context=context, length=length)
        kept = 0
        while kept < len(proposed) and done + kept < len(answer) and proposed[kept] == answer[done + kept]:
            kept += 1
        step = min(kept + 1, len(answer) - done)  # the kept drafts and the model's own next token
        context += answer[done : done + step]
        done += step
        count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("."), help="the folder snakemake ran in")
    parser.add_argument("--drafts", type=int, nargs="+", default=[4, 10], help="draft lengths to try")
    args = parser.parse_args()
    config = load_config(args.root / "config.yaml")
    model = next((args.root / "resources" / "models").iterdir())
    dataset = config["data"]["dataset"]
    tokenizer = load_tokenizer(model)
    builder = PromptBuilder.from_config(tokenizer=tokenizer, prompt=config["prompt"])
    examples = {e.id: e for e in read_examples(args.root / "results" / "data" / dataset / "eval.jsonl")}
    print(
        f"{'variant':<24} {'tokens':>7}"
        + "".join(f" {f'passes, draft {n}':>16} {'tokens/pass':>11}" for n in args.drafts)
    )
    for predictions in sorted((args.root / "results" / "eval" / model.name / dataset).glob("*/predictions.jsonl")):
        rows = read_jsonl(predictions)
        pairs = [
            (
                builder.build(examples[row["id"]].input, fields=examples[row["id"]].fields).input_ids,
                # The stop token ends a stopped answer: plain greedy decoding spends a pass on it too.
                tokenizer(row["prediction"], add_special_tokens=False).input_ids
                + ([tokenizer.eos_token_id] if row["stopped"] else []),
            )
            for row in rows
        ]
        tokens = sum(len(answer) for _, answer in pairs)
        line = f"{predictions.parent.name:<24} {tokens:>7}"
        for length in args.drafts:
            count = sum(passes(prompt=prompt, answer=answer, length=length) for prompt, answer in pairs)
            line += f" {count:>16} {tokens / count:>11.2f}"
        print(line)


if __name__ == "__main__":
    main()
