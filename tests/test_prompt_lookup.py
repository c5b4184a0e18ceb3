"""bench/prompt_lookup.py: the forward passes greedy prompt-lookup decoding takes, on
sequences worked out by hand."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("prompt_lookup", REPO / "bench" / "prompt_lookup.py")
prompt_lookup = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(prompt_lookup)


def test_the_latest_earlier_match_of_the_longest_tail_drafts() -> None:
    # [7, 8] occurs at 0 and 3: the latest (3) is copied; a 3-token tail has no earlier match.
    assert prompt_lookup.draft(context=[7, 8, 1, 7, 8, 2, 9, 7, 8], length=2) == [2, 9]
    assert prompt_lookup.draft(context=[7, 8, 1, 7, 8, 2, 9, 7, 8], length=10) == [2, 9, 7, 8]
    assert prompt_lookup.draft(context=[1, 2, 3], length=4) == []  # nothing repeats


def test_passes_count_the_kept_drafts_and_the_models_own_token() -> None:
    # Pass 1: no draft, the model gives 3. Pass 2: the tail [3] matched in the prompt drafts
    # [4, 5, 3]; 4 and 5 are kept, 3 is not the answer's 9, which the model gives itself.
    assert prompt_lookup.passes(prompt=[1, 2, 3, 4, 5], answer=[3, 4, 5, 9], length=10) == 2
    # Drafts of one token: pass 2 keeps the drafted 4 and the model gives 5; pass 3 drafts 3
    # (after [3, 4, 5]), which is not 9.
    assert prompt_lookup.passes(prompt=[1, 2, 3, 4, 5], answer=[3, 4, 5, 9], length=1) == 3
    # Nothing to look up: one pass per token, as plain greedy decoding.
    assert prompt_lookup.passes(prompt=[1, 2], answer=[3, 4, 5], length=10) == 3
