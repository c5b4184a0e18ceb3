"""Failure modes of a summary, measured per example instead of eyeballed.

- continuation bias: the prediction copies or continues the input instead of summarising
  it (long shared prefix, long verbatim spans, few n-grams the input does not have);
- degenerate output: empty, or looping on the same n-grams;
- instruction echo: the prompt's instruction repeated in the answer;
- length against the reference.
Text is compared as lower-cased word tokens, so punctuation and case do not matter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")

# Thresholds of the per-variant rates (shares of examples flagged).
COPY_SPAN_FLAG = 0.5  # a verbatim span covering at least half the prediction is copying
PREFIX_WORDS_FLAG = 8  # starting with the input's first 8+ words is continuing it
REPETITION_FLAG = 0.5  # half the trigrams repeated is a loop
ECHO_FLAG = 0.6  # 60% of the instruction's 4-grams in the answer is an echo
LENGTH_FLAGS = (0.5, 2.0)  # shorter than half / longer than twice the reference


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def common_prefix_words(prediction: Sequence[str], source: Sequence[str]) -> int:
    count = 0
    for mine, theirs in zip(prediction, source, strict=False):  # the shorter one ends the prefix
        if mine != theirs:
            break
        count += 1
    return count


def longest_common_span(prediction: Sequence[str], source: Sequence[str]) -> int:
    """Length in words of the longest run of the prediction found verbatim in the source."""
    best = 0
    previous = [0] * (len(source) + 1)
    for word in prediction:
        current = [0] * (len(source) + 1)
        for j, other in enumerate(source, start=1):
            if word == other:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


def novel_ngram_share(prediction: Sequence[str], source: Sequence[str], n: int) -> float:
    """Share of the prediction's n-grams that the source does not contain (1 = fully abstractive)."""
    mine = ngrams(prediction, n)
    if not mine:
        return 0.0
    theirs = set(ngrams(source, n))
    return sum(gram not in theirs for gram in mine) / len(mine)


def repetition_rate(tokens: Sequence[str], n: int = 3) -> float:
    """Share of n-grams that repeat an earlier one (0 = no loop)."""
    grams = ngrams(tokens, n)
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def instruction_echo(prediction: Sequence[str], instruction: Sequence[str], n: int = 4) -> float:
    """Share of the instruction's n-grams (n shrunk for very short instructions) in the prediction."""
    n = max(1, min(n, len(instruction)))
    grams = set(ngrams(instruction, n))
    if not grams:
        return 0.0
    mine = set(ngrams(prediction, n))
    return sum(gram in mine for gram in grams) / len(grams)


def measure(*, prediction: str, source: str, reference: str, instruction: str) -> dict[str, float]:
    """All failure-mode measures of one prediction."""
    predicted, given, wanted = words(prediction), words(source), words(reference)
    length = len(predicted)
    return {
        "words": length,
        "empty": float(length == 0),
        "prefix_words": common_prefix_words(predicted, given),
        "copy_span_share": longest_common_span(predicted, given) / length if length else 0.0,
        "novel_unigram_share": novel_ngram_share(predicted, given, 1),
        "novel_bigram_share": novel_ngram_share(predicted, given, 2),
        "novel_trigram_share": novel_ngram_share(predicted, given, 3),
        "repetition_rate": repetition_rate(predicted),
        "instruction_echo": instruction_echo(predicted, words(instruction)) if length else 0.0,
        "length_ratio": length / len(wanted) if wanted else 0.0,
    }


def flags(measures: Mapping[str, float]) -> dict[str, bool]:
    """The failure modes one example shows."""
    return {
        "continuation": measures["prefix_words"] >= PREFIX_WORDS_FLAG or measures["copy_span_share"] >= COPY_SPAN_FLAG,
        "degenerate": bool(measures["empty"]) or measures["repetition_rate"] >= REPETITION_FLAG,
        "instruction_echo": measures["instruction_echo"] >= ECHO_FLAG,
        "too_short": measures["length_ratio"] < LENGTH_FLAGS[0],
        "too_long": measures["length_ratio"] > LENGTH_FLAGS[1],
    }


def summarise(per_example: Sequence[Mapping[str, float]]) -> dict[str, Any]:
    """Per-variant means of every measure and the share of examples with each flag."""
    if not per_example:
        raise ValueError("no examples to summarise")
    count = len(per_example)
    means = {key: sum(m[key] for m in per_example) / count for key in per_example[0]}
    flagged = [flags(m) for m in per_example]
    rates = {key: sum(f[key] for f in flagged) / count for key in flagged[0]}
    return {"means": means, "rates": rates, "examples": count}
