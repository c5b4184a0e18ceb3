"""ROUGE per example, with stemming, through Google's `rouge-score` package.

We score each example ourselves and average, rather than calling `evaluate`'s ROUGE,
whose default aggregation is an unseeded bootstrap: the same predictions then score
differently from run to run (one of the hand-run studies' flaws). Confidence intervals
are computed from the per-example scores, seeded, elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rouge_score import rouge_scorer

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
FIELDS = ("precision", "recall", "fmeasure")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")

Scores = dict[str, dict[str, float]]


def split_sentences(text: str) -> str:
    """One sentence per line, which is how rougeLsum finds summary-level sentences.
    A punctuation rule rather than nltk's punkt, whose model is a hub download."""
    return "\n".join(part for part in _SENTENCE_END.split(text.strip()) if part)


def score_examples(*, predictions: Sequence[str], references: Sequence[str]) -> list[Scores]:
    """ROUGE-1/2/L/Lsum precision, recall and F-measure for each (prediction, reference)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    per_example = []
    for prediction, reference in zip(predictions, references):
        scores = scorer.score(split_sentences(reference), split_sentences(prediction))
        per_example.append(
            {kind: {field: float(getattr(scores[kind], field)) for field in FIELDS} for kind in ROUGE_TYPES}
        )
    return per_example


def mean_scores(per_example: Sequence[Scores]) -> Scores:
    """The plain mean over examples of every ROUGE type and field."""
    if not per_example:
        raise ValueError("no examples to average")
    count = len(per_example)
    return {
        kind: {field: sum(s[kind][field] for s in per_example) / count for field in FIELDS} for kind in ROUGE_TYPES
    }
