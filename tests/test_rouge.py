"""ROUGE equals rouge_score's own numbers and hand-computed values."""

from __future__ import annotations

import pytest
from rouge_score import rouge_scorer

from lora_study.rouge import ROUGE_TYPES, mean_scores, score_examples, split_sentences

PAIRS = [
    ("the cat sat on the mat", "the cat was sitting on the mat"),
    ("Adapters learn low-rank updates. They are cheap.", "Low-rank adapters are cheap to train. They learn updates."),
    ("completely different words here", "nothing shared at all"),
]


def test_equals_rouge_score_package() -> None:
    predictions = [p for p, _ in PAIRS]
    references = [r for _, r in PAIRS]
    ours = score_examples(predictions=predictions, references=references)
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    for (prediction, reference), mine in zip(PAIRS, ours):
        theirs = scorer.score(split_sentences(reference), split_sentences(prediction))
        for kind in ROUGE_TYPES:
            assert mine[kind]["fmeasure"] == pytest.approx(theirs[kind].fmeasure, abs=1e-12)
            assert mine[kind]["precision"] == pytest.approx(theirs[kind].precision, abs=1e-12)
            assert mine[kind]["recall"] == pytest.approx(theirs[kind].recall, abs=1e-12)


def test_hand_computed_values() -> None:
    (scores,) = score_examples(predictions=["the cat sat"], references=["the cat ran"])
    assert scores["rouge1"]["fmeasure"] == pytest.approx(2 / 3)
    assert scores["rouge2"]["fmeasure"] == pytest.approx(1 / 2)
    assert scores["rougeL"]["fmeasure"] == pytest.approx(2 / 3)
    (identical,) = score_examples(predictions=["Adapters are cheap."], references=["Adapters are cheap."])
    assert all(identical[kind]["fmeasure"] == 1.0 for kind in ROUGE_TYPES)
    (disjoint,) = score_examples(predictions=["alpha beta"], references=["gamma delta"])
    assert all(disjoint[kind]["fmeasure"] == 0.0 for kind in ROUGE_TYPES)


def test_stemming_matches_inflections() -> None:
    (scores,) = score_examples(predictions=["models adapting"], references=["model adapts"])
    assert scores["rouge1"]["fmeasure"] == pytest.approx(1.0)


def test_rouge_lsum_uses_sentences() -> None:
    assert split_sentences("One. Two! Three? Four") == "One.\nTwo!\nThree?\nFour"
    # Sentence order swapped: LCS over the whole text loses, summary-level LCS does not.
    (scores,) = score_examples(predictions=["b c d. a x y."], references=["a x y. b c d."])
    assert scores["rougeLsum"]["fmeasure"] == pytest.approx(1.0)
    assert scores["rougeL"]["fmeasure"] < 1.0


def test_mean_is_plain_average() -> None:
    per_example = score_examples(predictions=["the cat sat", "alpha"], references=["the cat ran", "alpha"])
    mean = mean_scores(per_example)
    assert mean["rouge1"]["fmeasure"] == pytest.approx((2 / 3 + 1.0) / 2)


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        score_examples(predictions=["a", "b"], references=["a"])
