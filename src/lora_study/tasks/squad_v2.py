"""SQuAD v2 exact match and token F1, with unanswerable questions and abstention.

The semantics are those of the official evaluate-v2.0.py script (also used by
lm-evaluation-harness's squad_v2 task), so our numbers can be set beside published ones:
answers are compared after the official normalisation, each question takes its best score
over the gold answers, and an unanswerable question's only gold answer is "". Scores are
fractions in [0, 1], not the script's percentages.

A generative model does not output "" when it abstains, so a configured abstention string
(e.g. "unanswerable") counts as abstaining and is scored as "".
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation, drop the articles a/an/the, collapse whitespace.

    The order is the official one and it matters: punctuation goes before the articles,
    so "the-end" becomes "theend" (no article left), not "end".
    """
    lowered = text.lower()
    no_punctuation = "".join(ch for ch in lowered if ch not in _PUNCTUATION)
    no_articles = _ARTICLES.sub(" ", no_punctuation)
    return " ".join(no_articles.split())


def exact_match(*, prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(*, prediction: str, gold: str) -> float:
    """F1 of the bag of normalised tokens (a token counts as often as it occurs in both).

    With an empty side, precision or recall is undefined; the official script then gives
    1.0 when both are empty (a correct abstention) and 0.0 otherwise.
    """
    predicted_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted_tokens or not gold_tokens:
        return float(predicted_tokens == gold_tokens)
    shared = sum((Counter(predicted_tokens) & Counter(gold_tokens)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(predicted_tokens), shared / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def score_question(*, prediction: str, answers: Sequence[str], abstain: str) -> dict[str, float | bool]:
    """Exact and F1 of one question (each the max over its gold answers), whether it is
    answerable, and whether the model abstained.

    As the official evaluation script: a question is answerable (its HasAns split) when its
    raw gold list is not empty; gold answers that normalise to "" (such as "the") are dropped
    for scoring, and a question left with none is scored against [""].
    """
    answerable = bool(answers)
    golds = [answer for answer in answers if normalize_answer(answer)] or [""]
    normalised = normalize_answer(prediction)
    abstained = not normalised or normalised == normalize_answer(abstain)
    scored = "" if abstained else prediction
    return {
        "exact": max(exact_match(prediction=scored, gold=gold) for gold in golds),
        "f1": max(token_f1(prediction=scored, gold=gold) for gold in golds),
        "answerable": answerable,
        "abstained": abstained,
    }


def squad_v2_summary(*, per_question: Sequence[Mapping[str, float | bool]]) -> dict[str, object]:
    """Means of exact and F1, the abstention rate and the count: over all questions and,
    as in the official HasAns/NoAns report, over the answerable and unanswerable ones.

    An overall score mixes two skills (answering, and knowing when not to), so the splits
    say which one changed. A split without questions has None scores, not 0: nothing was
    measured there.
    """
    answerable = [q for q in per_question if q["answerable"]]
    unanswerable = [q for q in per_question if not q["answerable"]]
    return {
        **_split(per_question),
        "answerable": _split(answerable),
        "unanswerable": _split(unanswerable),
    }


def _split(questions: Sequence[Mapping[str, float | bool]]) -> dict[str, float | int | None]:
    count = len(questions)
    if count == 0:
        return {"exact": None, "f1": None, "abstained": None, "count": 0}
    return {
        "exact": sum(float(q["exact"]) for q in questions) / count,
        "f1": sum(float(q["f1"]) for q in questions) / count,
        "abstained": sum(bool(q["abstained"]) for q in questions) / count,
        "count": count,
    }
