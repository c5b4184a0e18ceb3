"""SQuAD v2 exact match and F1 on hand-computed values: normalisation, several gold
answers, unanswerable questions, abstention and the answerable/unanswerable splits; and on
fixtures scored by the official evaluation script (tests/fixtures/squad_v2/README.md)."""

from __future__ import annotations

import json

import pytest

from conftest import REPO
from lora_study.tasks.squad_v2 import exact_match, normalize_answer, score_question, squad_v2_summary, token_f1

ABSTAIN = "unanswerable"


def score(prediction: str, answers: list[str]) -> dict[str, float | bool]:
    return score_question(prediction=prediction, answers=answers, abstain=ABSTAIN)


def test_normalisation_case_punctuation_articles_whitespace() -> None:
    assert normalize_answer("The Eiffel Tower!") == "eiffel tower"
    assert exact_match(prediction="The Eiffel Tower!", gold="eiffel tower") == 1.0
    assert normalize_answer("  A  cat,\tan apple; THE end ") == "cat apple end"
    # Punctuation is deleted, not replaced by a space: "apple;the" becomes one word, so no article.
    assert normalize_answer("apple;THE end") == "applethe end"
    # Articles only as whole words: "theatre" and "another" keep their letters.
    assert normalize_answer("the theatre, another") == "theatre another"
    # Official order: punctuation goes first, so "the-end" becomes the single word "theend".
    assert normalize_answer("the-end") == "theend"
    assert exact_match(prediction="Eiffel", gold="eiffel tower") == 0.0


def test_partial_overlap_f1_by_hand() -> None:
    # "the big red dog" -> [big, red, dog]; "red dog barks" -> [red, dog, barks].
    # Shared: red, dog = 2. P = 2/3, R = 2/3, F1 = 2 (2/3)(2/3) / (4/3) = 2/3.
    assert token_f1(prediction="the big red dog", gold="red dog barks") == pytest.approx(2 / 3)
    # Precision and recall differ: [red, dog] vs [big, red, dog, barks]: P = 2/2, R = 2/4, F1 = 2(1)(1/2)/(3/2) = 2/3.
    assert token_f1(prediction="red dog", gold="big red dog barks") == pytest.approx(2 / 3)
    # A repeated token counts once per occurrence on both sides (Counter intersection):
    # [dog, dog] vs [dog]: shared 1, P = 1/2, R = 1/1, F1 = 2 (1/2)(1) / (3/2) = 2/3.
    assert token_f1(prediction="dog dog", gold="dog") == pytest.approx(2 / 3)
    assert token_f1(prediction="cat", gold="dog") == 0.0
    # Empty after normalisation: 1 only when both sides are empty.
    assert token_f1(prediction="The.", gold="") == 1.0
    assert token_f1(prediction="", gold="dog") == 0.0


def test_several_gold_answers_take_the_maximum() -> None:
    result = score("Denver Broncos", ["Broncos", "Denver Broncos"])
    assert result["exact"] == 1.0 and result["f1"] == 1.0  # the second gold matches exactly
    # Exact and F1 take their maxima separately. (Where a gold matches exactly, that gold's F1
    # is 1 too, so the two can part only when no gold matches.) Here both golds have exact 0,
    # the first gold ties for exact but has F1 0; the second gives F1:
    # [denver, broncos] vs [denver, broncos, team]: P = 2/2, R = 2/3, F1 = 2 (2/3) / (5/3) = 4/5.
    result = score("Denver Broncos", ["Carolina Panthers", "Denver Broncos team"])
    assert result["exact"] == 0.0
    assert result["f1"] == pytest.approx(4 / 5)


def test_duplicate_gold_answers_as_the_official_script() -> None:
    """The official script takes max() over the gold list as given: a duplicated answer
    neither adds weight (as a mean would) nor changes the score."""
    # "the Broncos team" -> [broncos, team].
    # vs "Denver Broncos" [denver, broncos]: shared 1, P = 1/2, R = 1/2, F1 = 1/2.
    # vs "Broncos" [broncos]: shared 1, P = 1/2, R = 1/1, F1 = 2 (1/2) / (3/2) = 2/3.
    # Max = 2/3 with or without the duplicate; a mean would give (1/2 + 1/2 + 2/3)/3 = 5/9.
    with_duplicate = score("the Broncos team", ["Denver Broncos", "Denver Broncos", "Broncos"])
    without = score("the Broncos team", ["Denver Broncos", "Broncos"])
    assert with_duplicate == without
    assert with_duplicate["f1"] == pytest.approx(2 / 3) and with_duplicate["exact"] == 0.0
    # The official script drops gold answers that normalise to "" before scoring, so an
    # empty answer beside a real one leaves the question answerable: abstaining scores 0.
    mixed = score("", ["", "Paris"])
    assert mixed["answerable"] is True
    assert (mixed["exact"], mixed["f1"]) == (0.0, 0.0)
    assert score("Paris", ["", "Paris"])["exact"] == 1.0


def test_unanswerable_and_abstention() -> None:
    # Unanswerable (gold [""]) and the model abstains: exact 1, F1 1.
    for prediction in ("unanswerable", "Unanswerable.", "", "  The. "):
        result = score(prediction, [])
        assert result == {"exact": 1.0, "f1": 1.0, "answerable": False, "abstained": True}
    # Unanswerable, but the model answers: 0 and 0.
    assert score("Paris", []) == {"exact": 0.0, "f1": 0.0, "answerable": False, "abstained": False}
    # Answerable, but the model abstains: 0 and 0 (the abstention string is not matched as text).
    assert score("unanswerable", ["Paris"]) == {"exact": 0.0, "f1": 0.0, "answerable": True, "abstained": True}
    # An answer that merely contains the abstention word is an answer.
    assert score("unanswerable question", [])["abstained"] is False


def test_answers_that_normalise_to_empty_are_scored_as_empty_but_stay_answerable() -> None:
    # "the" -> "" (an article) and "." -> "" (punctuation): scored against "" as the official
    # script does, and answerable (HasAns) as it files them, since the answer list is not empty.
    result = score("unanswerable", ["the", "."])
    assert result == {"exact": 1.0, "f1": 1.0, "answerable": True, "abstained": True}
    assert score("dog", ["the", "."])["exact"] == 0.0


def test_summary_splits_by_hand() -> None:
    per_question = [
        score("Paris", ["Paris"]),  # answerable: exact 1, F1 1
        score("red cat", ["red dog"]),  # answerable: exact 0, F1 = 2 (1/2)(1/2) / 1 = 1/2
        score("unanswerable", ["1990"]),  # answerable, abstained: 0, 0
        score("", []),  # unanswerable, abstained: 1, 1
        score("London", []),  # unanswerable, answered: 0, 0
    ]
    summary = squad_v2_summary(per_question=per_question)
    # Overall: exact (1+0+0+1+0)/5 = 0.4; F1 (1+0.5+0+1+0)/5 = 0.5; abstained 2/5.
    assert summary["count"] == 5
    assert summary["exact"] == pytest.approx(0.4)
    assert summary["f1"] == pytest.approx(0.5)
    assert summary["abstained"] == pytest.approx(0.4)
    # Answerable (HasAns): exact 1/3; F1 (1 + 0.5 + 0)/3 = 0.5; abstained 1/3.
    assert summary["answerable"] == pytest.approx({"exact": 1 / 3, "f1": 0.5, "abstained": 1 / 3, "count": 3})
    # Unanswerable (NoAns): exact 1/2; F1 1/2; abstained 1/2.
    assert summary["unanswerable"] == pytest.approx({"exact": 0.5, "f1": 0.5, "abstained": 0.5, "count": 2})


def test_empty_split_gives_none() -> None:
    summary = squad_v2_summary(per_question=[score("Paris", ["Paris"]), score("Rome", ["Paris"])])
    assert summary["unanswerable"] == {"exact": None, "f1": None, "abstained": None, "count": 0}
    assert summary["answerable"]["count"] == 2 and summary["answerable"]["exact"] == 0.5
    assert squad_v2_summary(per_question=[])["exact"] is None


FIXTURES = REPO / "tests" / "fixtures" / "squad_v2"


def official_fixture_scores() -> tuple[dict[str, dict[str, float | bool]], dict, dict]:
    """Our per-question scores of the fixture predictions, and the official script's output:
    its totals (official_output.json) and its per-question scores (official_per_question.json)."""
    dataset = json.loads((FIXTURES / "dataset.json").read_text())["data"]
    predictions = json.loads((FIXTURES / "predictions.json").read_text())
    ours = {
        qa["id"]: score(predictions[qa["id"]], [answer["text"] for answer in qa["answers"]])
        for article in dataset
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    }
    totals = json.loads((FIXTURES / "official_output.json").read_text())
    per_question = json.loads((FIXTURES / "official_per_question.json").read_text())
    return ours, totals, per_question


def test_per_question_scores_equal_the_official_script() -> None:
    ours, _, official = official_fixture_scores()
    assert ABSTAIN not in json.loads((FIXTURES / "predictions.json").read_text()).values()  # "" abstains, as there
    assert set(ours) == set(official["exact"]) == set(official["f1"])
    assert len(ours) == 28
    for qid, result in ours.items():
        assert result["exact"] == official["exact"][qid], qid
        assert result["f1"] == pytest.approx(official["f1"][qid], rel=1e-12, abs=1e-15), qid


def test_totals_equal_the_official_script() -> None:
    """Overall exact and F1 (the script's percentages), and the HasAns/NoAns splits."""
    ours, totals, official = official_fixture_scores()
    summary = squad_v2_summary(per_question=list(ours.values()))
    assert summary["count"] == totals["total"]
    assert 100 * summary["exact"] == pytest.approx(totals["exact"], rel=1e-12)
    assert 100 * summary["f1"] == pytest.approx(totals["f1"], rel=1e-12)
    # Every question in the script's own split (HasAns: a non-empty answer list, even one whose
    # answers all normalise to "", such as "The"), so the splits equal its own to the last digit.
    assert {qid for qid, result in ours.items() if result["answerable"] != official["has_ans"][qid]} == set()
    split = summary
    for ours_name, official_name in (("answerable", "HasAns"), ("unanswerable", "NoAns")):
        assert split[ours_name]["count"] == totals[f"{official_name}_total"]
        assert 100 * split[ours_name]["exact"] == pytest.approx(totals[f"{official_name}_exact"], rel=1e-12)
        assert 100 * split[ours_name]["f1"] == pytest.approx(totals[f"{official_name}_f1"], rel=1e-12)
