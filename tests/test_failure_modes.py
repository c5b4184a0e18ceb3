"""Failure-mode measures score copied inputs high and real summaries low."""

from __future__ import annotations

import pytest

from lora_study.tasks.failure_modes import (
    common_prefix_words,
    flags,
    instruction_echo,
    longest_common_span,
    measure,
    novel_ngram_share,
    repetition_rate,
    summarise,
    words,
)

SOURCE = (
    "Handling terminology is an important matter in a translation workflow. However, current machine "
    "translation systems do not yet propose anything proactive upon tools which assist in managing "
    "terminological databases. In this work, we investigate several enhancements to analogical learning."
)
REFERENCE = "MT systems handle domain terms poorly. They improve analogy solvers. Medical term translation gets better."
SUMMARY = (
    "Machine translation struggles with specialised terms; the authors improve analogical learners and gain accuracy."
)
INSTRUCTION = "Summarize the following scientific abstract in 2-3 sentences."


def test_copied_input_is_flagged_as_continuation() -> None:
    copied = measure(prediction=SOURCE[:180], source=SOURCE, reference=REFERENCE, instruction=INSTRUCTION)
    assert copied["prefix_words"] >= 20
    assert copied["copy_span_share"] == 1.0
    assert copied["novel_bigram_share"] == 0.0
    assert flags(copied)["continuation"]


def test_continuing_from_the_middle_is_flagged_too() -> None:
    middle = (
        "However, current machine translation systems do not yet propose anything proactive upon tools which assist"
    )
    continued = measure(prediction=middle, source=SOURCE, reference=REFERENCE, instruction=INSTRUCTION)
    assert continued["prefix_words"] == 0 and continued["copy_span_share"] == 1.0
    assert flags(continued)["continuation"]


def test_real_summary_scores_low_on_continuation() -> None:
    summary = measure(prediction=SUMMARY, source=SOURCE, reference=REFERENCE, instruction=INSTRUCTION)
    assert summary["prefix_words"] == 0
    assert summary["copy_span_share"] < 0.2
    assert summary["novel_bigram_share"] > 0.8
    assert not any(flags(summary).values())


def test_degenerate_outputs() -> None:
    loop = measure(
        prediction="the model the model the model the model the model",
        source=SOURCE,
        reference=REFERENCE,
        instruction=INSTRUCTION,
    )
    assert loop["repetition_rate"] > 0.5 and flags(loop)["degenerate"]
    empty = measure(prediction="  ", source=SOURCE, reference=REFERENCE, instruction=INSTRUCTION)
    assert empty["empty"] == 1.0 and flags(empty)["degenerate"] and flags(empty)["too_short"]


def test_instruction_echo() -> None:
    echoed = measure(
        prediction=INSTRUCTION + " Terms are hard.", source=SOURCE, reference=REFERENCE, instruction=INSTRUCTION
    )
    assert echoed["instruction_echo"] == 1.0 and flags(echoed)["instruction_echo"]
    assert instruction_echo(words(SUMMARY), words(INSTRUCTION)) == 0.0
    assert instruction_echo(words("please summarize now"), words("Summarize")) == 1.0


def test_primitives_on_known_values() -> None:
    assert common_prefix_words(["a", "b", "c"], ["a", "b", "x"]) == 2
    assert longest_common_span(["x", "b", "c", "d", "y"], ["a", "b", "c", "d"]) == 3
    assert novel_ngram_share(["a", "b", "z"], ["a", "b", "c"], 1) == pytest.approx(1 / 3)
    assert novel_ngram_share(["a", "b", "z"], ["a", "b", "c"], 2) == pytest.approx(1 / 2)
    assert repetition_rate(["a", "b", "c", "a", "b", "c"]) == pytest.approx(1 - 3 / 4)
    assert words("State-of-the-art, isn't it?") == ["state-of-the-art", "isn't", "it"]


def test_length_flags_and_summary_rates() -> None:
    long = measure(prediction=SOURCE, source="unrelated words", reference="short reference", instruction=INSTRUCTION)
    assert long["length_ratio"] > 2 and flags(long)["too_long"]
    summary = summarise(
        [long, measure(prediction=SUMMARY, source=SOURCE, reference=REFERENCE, instruction=INSTRUCTION)]
    )
    assert summary["examples"] == 2 and summary["rates"]["too_long"] == 0.5
    assert summary["means"]["words"] == pytest.approx((len(words(SOURCE)) + len(words(SUMMARY))) / 2)
