"""ROUGE equals rouge_score's own numbers and hand-computed values; the sentence
splitter keeps abbreviations; unstemmed scores sit beside the stemmed ones."""

from __future__ import annotations

import pytest
from rouge_score import rouge_scorer

from lora_study.tasks.rouge import ROUGE_TYPES, mean_scores, rouge_result, score_examples, split_sentences

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
    for (prediction, reference), mine in zip(PAIRS, ours, strict=True):
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
    (scores,) = score_examples(predictions=["B c d. A x y."], references=["A x y. B c d."])
    assert scores["rougeLsum"]["fmeasure"] == pytest.approx(1.0)
    assert scores["rougeL"]["fmeasure"] < 1.0


def test_mean_is_plain_average() -> None:
    per_example = score_examples(predictions=["the cat sat", "alpha"], references=["the cat ran", "alpha"])
    mean = mean_scores(per_example)
    assert mean["rouge1"]["fmeasure"] == pytest.approx((2 / 3 + 1.0) / 2)


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        score_examples(predictions=["a", "b"], references=["a"])


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("We tune q and v, e.g. with LoRA. It works.", ["We tune q and v, e.g. with LoRA.", "It works."]),
        ("That is, i.e. the rank. Next.", ["That is, i.e. the rank.", "Next."]),
        ("Smith et al. (2020) found it. Then we did.", ["Smith et al. (2020) found it.", "Then we did."]),
        ("Smith et al. Found it.", ["Smith et al. Found it."]),
        ("As Fig. 3 and Eq. 2 show, it holds.", ["As Fig. 3 and Eq. 2 show, it holds."]),
        ("Dr. Who met Prof. Xu vs. Mr. Young. They spoke.", ["Dr. Who met Prof. Xu vs. Mr. Young.", "They spoke."]),
        # The price of keeping initials together: a sentence ending in one capital letter stays joined.
        ("We chose plan B. It worked.", ["We chose plan B. It worked."]),
        ("Apples, pears, etc. and more. Done.", ["Apples, pears, etc. and more.", "Done."]),
        ("Apples, pears, etc. The end.", ["Apples, pears, etc.", "The end."]),
        ("The score rose to 3.5 points. The loss fell 0.2.", ["The score rose to 3.5 points.", "The loss fell 0.2."]),
        ("J. R. R. Tolkien wrote it. Yes!", ["J. R. R. Tolkien wrote it.", "Yes!"]),
        ('He said "Stop." Then left.', ['He said "Stop."', "Then left."]),
        ("cf. the appendix. Done", ["cf. the appendix.", "Done"]),
    ],
)
def test_sentence_splitter_keeps_abbreviations(text: str, sentences: list[str]) -> None:
    assert split_sentences(text).split("\n") == sentences


def test_unstemmed_scores_match_evaluate_default() -> None:
    """Hugging Face evaluate's ROUGE uses rouge_score with use_stemmer=False by default."""
    (plain,) = score_examples(predictions=["models adapting"], references=["model adapts"], use_stemmer=False)
    assert plain["rouge1"]["fmeasure"] == 0.0  # no shared word without the stemmer (stemmed: 1.0)
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=False)
    for prediction, reference in PAIRS:
        (mine,) = score_examples(predictions=[prediction], references=[reference], use_stemmer=False)
        theirs = scorer.score(split_sentences(reference), split_sentences(prediction))
        assert all(mine[kind]["fmeasure"] == pytest.approx(theirs[kind].fmeasure, abs=1e-12) for kind in ROUGE_TYPES)


def test_rouge_result_keeps_the_headline_keys_and_adds_unstemmed() -> None:
    rows = [
        {"id": "a", "prediction": "models adapting", "reference": "model adapts"},
        {"id": "b", "prediction": "the cat sat", "reference": "the cat ran"},
    ]
    result = rouge_result(rows=rows, variant="base", spec=None, predictions_file="p.jsonl")
    assert list(result) == ["run", "metrics"] and result["run"]["spec"] is None
    assert result["run"]["stemmer"].startswith("porter") and "evaluate" in result["run"]["unstemmed"]
    first, second = result["metrics"]["per_example"]
    assert first["id"] == "a" and first["rouge1"]["fmeasure"] == pytest.approx(1.0)  # headline: stemmed
    assert first["unstemmed"]["rouge1"]["fmeasure"] == 0.0
    assert second["unstemmed"]["rougeL"]["fmeasure"] == pytest.approx(2 / 3) == second["rougeL"]["fmeasure"]
    assert result["metrics"]["mean"]["rouge1"]["fmeasure"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert result["metrics"]["mean_unstemmed"]["rouge1"]["fmeasure"] == pytest.approx((0.0 + 2 / 3) / 2)
    assert result["run"]["examples"] == 2
