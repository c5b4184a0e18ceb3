"""ROUGE per example through Google's `rouge-score` package, with and without stemming.

We score each example ourselves and average, rather than calling `evaluate`'s ROUGE,
whose default aggregation is an unseeded bootstrap: the same predictions then score
differently from run to run (one of the hand-run studies' flaws). Confidence intervals
are computed from the per-example scores, seeded, elsewhere.

The headline scores use the Porter stemmer ("models" matches "model"). Hugging Face
`evaluate`'s ROUGE does not stem by default, and the reference Study 1 used that default,
so every scores.json also carries the unstemmed scores (`metrics.mean_unstemmed`,
`metrics.per_example[i].unstemmed`) for a like-for-like comparison.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
FIELDS = ("precision", "recall", "fmeasure")
STEMMER = "porter (rouge-score use_stemmer=True)"
UNSTEMMED = "none (use_stemmer=False, Hugging Face evaluate's default): metrics.mean_unstemmed, metrics.per_example[i].unstemmed"
# What rougeLsum's sentences are (split_sentences): recorded in each scores.json and said beside
# every rougeLsum number in the report, since rougeLsum moves with the splitter.
SPLITTER = (
    "a punctuation rule (lora_study.tasks.rouge.split_sentences): a break after . ! or ? and whitespace, "
    "except after a known abbreviation (e.g., et al., Fig.) or an initial, or before a lowercase word"
)
ROUGE_LSUM_NOTE = (
    f"ROUGE-Lsum's sentences come from {SPLITTER}, not from nltk's punkt (nltk.sent_tokenize), which Hugging "
    "Face's summarisation scripts use, so ROUGE-Lsum is not comparable with their ROUGE-Lsum"
)

# A candidate sentence end: . ! or ? (then any closing quotes or brackets) and whitespace.
_BOUNDARY = re.compile(r"[.!?][\"'\u201d\u2019)\]]*\s+")
# Abbreviations after which a sentence (almost) never ends: what follows is a name, a
# number or the rest of the sentence, whatever its case.
_NEVER_END = frozenset(
    [
        "e.g.",
        "i.e.",
        "cf.",
        "vs.",
        "viz.",
        "al.",
        "fig.",
        "figs.",
        "eq.",
        "eqs.",
        "tab.",
        "sec.",
        "ch.",
        "ref.",
        "refs.",
        "no.",
        "nos.",
        "vol.",
        "pp.",
        "approx.",
        "dr.",
        "mr.",
        "mrs.",
        "ms.",
        "prof.",
        "st.",
        "jr.",
        "sr.",
    ]
)
_INITIAL = re.compile(r"^[A-Z]\.$")  # "J. Smith"

Scores = dict[str, dict[str, float]]


def split_sentences(text: str) -> str:
    """One sentence per line, which is how rougeLsum finds summary-level sentences.

    A punctuation rule rather than nltk's punkt, whose model is a hub download: a break
    after . ! ? and whitespace, except after a known abbreviation or an initial, or where
    the next word starts in lowercase (so "etc. and" stays, "etc. The" breaks). Decimal
    numbers (3.5) have no whitespace after the point, so never break."""
    text = text.strip()
    parts, start = [], 0
    for match in _BOUNDARY.finditer(text):
        before = text[start : match.end()].split()
        word = before[-1].lstrip("(['\"\u201c\u2018") if before else ""
        following = text[match.end() : match.end() + 1]
        if word.lower().rstrip("\"'\u201d\u2019)]") in _NEVER_END or _INITIAL.match(word) or following.islower():
            continue
        parts.append(text[start : match.end()].strip())
        start = match.end()
    parts.append(text[start:].strip())
    return "\n".join(part for part in parts if part)


def score_examples(*, predictions: Sequence[str], references: Sequence[str], use_stemmer: bool = True) -> list[Scores]:
    """ROUGE-1/2/L/Lsum precision, recall and F-measure for each (prediction, reference)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    from rouge_score import rouge_scorer  # here: the config check reads ROUGE_TYPES where only snakemake is installed

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer)
    per_example = []
    for prediction, reference in zip(predictions, references, strict=True):
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
    return {kind: {field: sum(s[kind][field] for s in per_example) / count for field in FIELDS} for kind in ROUGE_TYPES}


def rouge_result(
    *, rows: Sequence[Mapping[str, Any]], variant: str, spec: Mapping[str, Any] | None, predictions_file: str
) -> dict[str, Any]:
    """scores.json's `run` and `metrics` for predictions.jsonl rows: Porter-stemmed scores
    under the usual keys, unstemmed ones beside them. `spec`: the trained variant's
    (VariantSpec.to_dict()), None for the base model or a precision."""
    predictions, references = [row["prediction"] for row in rows], [row["reference"] for row in rows]
    stemmed = score_examples(predictions=predictions, references=references, use_stemmer=True)
    plain = score_examples(predictions=predictions, references=references, use_stemmer=False)
    return {
        "run": {
            "variant": variant,
            "spec": None if spec is None else dict(spec),
            "predictions_file": predictions_file,
            "examples": len(rows),
            "stemmer": STEMMER,
            "unstemmed": UNSTEMMED,
            "sentence_splitter": SPLITTER,
        },
        "metrics": {
            "mean": mean_scores(stemmed),
            "mean_unstemmed": mean_scores(plain),
            "per_example": [
                {"id": row["id"], **s, "unstemmed": p} for row, s, p in zip(rows, stemmed, plain, strict=True)
            ],
        },
    }
