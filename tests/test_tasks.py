"""The task layer: prompts with fixed fields, training targets, label scoring, each task's
scores, the comparisons a classification study gets, Wilson intervals and the config checks."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM

from conftest import REPO, tiny_config
from lora_study.core.config import ConfigError, template_names, template_problem, validate_config
from lora_study.core.data import Example
from lora_study.core.grid import VariantSpec
from lora_study.model.prompts import PromptBuilder, PromptError
from lora_study.model.training import IGNORE, make_item
from lora_study.stages.compare.compare import VariantScores, compare_variants
from lora_study.stats.inference import PAIRED_PROPORTIONS, Interval, wilson_interval, within
from lora_study.tasks import TaskError, mean_values, task_named
from lora_study.tasks.label_scoring import answer_ids, label_predictions, sequence_log_probs
from lora_study.tasks.scores import predictions_result

PAIR_TEMPLATE = "Sentence 1: {input}\nSentence 2: {sentence2}"
QA_TEMPLATE = "Context: {input}\nQuestion: {question}"
PAIR_INSTRUCTION = "Do the two sentences say the same thing? Answer yes or no."
QA_INSTRUCTION = "Answer the question from the context, or say unanswerable."
LONG_INPUT = " ".join(f"Sentence number {i} describes a result about adapters." for i in range(200))
SECOND = "The committee approved the revised budget on Tuesday afternoon after a long debate"
QUESTION = "Which committee approved the revised budget on Tuesday afternoon"
CLASSES = {"name": "classification", "labels": {"Con": "Conservative", "Lab": "Labour"}, "positive_label": "Lab"}
QA = {"name": "extractive_qa", "abstain": "unanswerable"}
Z95 = 1.959964


def builder_for(tokenizer, *, template: str, instruction: str, chat_template: bool, limit: int = 96) -> PromptBuilder:
    return PromptBuilder(
        tokenizer=tokenizer,
        instruction=instruction,
        chat_template=chat_template,
        max_input_tokens=limit,
        template=template,
        cue="Answer:",
    )


# 1. Truncation cuts the input only.


@pytest.mark.parametrize("chat_template", [True, False])
@pytest.mark.parametrize(
    ("template", "instruction", "field"),
    [(PAIR_TEMPLATE, PAIR_INSTRUCTION, "sentence2"), (QA_TEMPLATE, QA_INSTRUCTION, "question")],
)
def test_truncation_never_loses_a_fixed_field(
    tokenizer, chat_template: bool, template: str, instruction: str, field: str
) -> None:
    value = SECOND if field == "sentence2" else QUESTION
    builder = builder_for(tokenizer, template=template, instruction=instruction, chat_template=chat_template)
    prompt = builder.build(LONG_INPUT, fields={field: value})
    text = tokenizer.decode(prompt.input_ids)
    assert prompt.truncated and len(prompt.input_ids) <= 96
    assert len(prompt.input_text) < len(LONG_INPUT) and LONG_INPUT.startswith(prompt.input_text)
    assert value in text and instruction in text
    assert prompt.fields == {field: value}
    if not chat_template:
        assert text.endswith("\n\nAnswer:")


@pytest.mark.parametrize("chat_template", [True, False])
def test_a_field_too_long_for_the_budget_is_an_error(tokenizer, chat_template: bool) -> None:
    builder = builder_for(tokenizer, template=PAIR_TEMPLATE, instruction=PAIR_INSTRUCTION, chat_template=chat_template)
    with pytest.raises(PromptError, match=r"max_input_tokens=96"):
        builder.build("A short first sentence.", fields={"sentence2": LONG_INPUT})


# 2. input_mask: the example's own tokens, never the instruction's.


@pytest.mark.parametrize("chat_template", [True, False])
def test_input_mask_covers_the_examples_text_and_not_the_instruction(tokenizer, chat_template: bool) -> None:
    instruction = "Zebras quokkas narwhals: compare these."
    builder = builder_for(
        tokenizer, template=PAIR_TEMPLATE, instruction=instruction, chat_template=chat_template, limit=128
    )
    first, second = "Cats sleep most of the day in warm places.", "Dogs bark at the postman every morning."
    prompt = builder.build(first, fields={"sentence2": second})
    mask = builder.input_mask(prompt)
    assert len(mask) == len(prompt.input_ids)
    masked = tokenizer.decode([t for t, m in zip(prompt.input_ids, mask, strict=True) if m])
    unmasked = tokenizer.decode([t for t, m in zip(prompt.input_ids, mask, strict=True) if not m])
    assert first in masked and second in masked
    assert not any(word in masked for word in ("Zebra", "quokka", "narwhal", "compare"))
    # Every instruction token is unmasked, so the unmasked tokens spell the instruction whole.
    assert instruction in unmasked
    assert "Sentence 1:" in unmasked and "Sentence 2:" in unmasked


# 3. Template validity.


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("Sentence 2: {sentence2}", "exactly once"),
        ("{input} and again {input}", "exactly once"),
        ("{input:>10}", "plain field name"),
        ("{input} {0}", "plain field name"),
        ("{input!r}", "plain field name"),
        ("{input} {question} {question}", "repeats a placeholder"),
        ("{input} {unclosed", "not a valid template"),
    ],
)
def test_template_problems(template: str, message: str) -> None:
    problem = template_problem(template)
    assert problem is not None and message in problem


def test_valid_templates_and_literal_braces() -> None:
    assert template_problem(QA_TEMPLATE) is None
    assert template_problem("{{x}} {input} {{y}}") is None
    assert template_names("{{x}} {input} {{y}}") == ["input"]


def test_literal_braces_render_literally(tokenizer) -> None:
    builder = builder_for(tokenizer, template="{{x}} {input}", instruction="Read.", chat_template=False)
    assert builder.field_names == ()
    assert "{x} The text." in builder.render("The text.")


# 4. Training targets come from the task.


def target_text(tokenizer, item) -> str:
    start = next(i for i, label in enumerate(item.labels) if label != IGNORE)
    assert all(label != IGNORE for label in item.labels[start:]), "the target is one contiguous run"
    assert item.labels[start:] == item.input_ids[start:]
    return tokenizer.decode(item.labels[start:])


@pytest.mark.parametrize("chat_template", [True, False])
def test_classification_target_is_the_labels_verbaliser(tokenizer, chat_template: bool) -> None:
    builder = builder_for(
        tokenizer, template="{input}", instruction="Which party?", chat_template=chat_template, limit=128
    )
    example = Example(id="s1", input="We must cut taxes for hard-working families.", reference="Con")
    item = make_item(builder=builder, tokenizer=tokenizer, example=example, max_target_tokens=48, task=CLASSES)
    expected = tokenizer(builder.completion_text("Conservative"), add_special_tokens=False).input_ids
    assert item.labels[-len(expected) :] == expected
    assert item.labels[: -len(expected)] == [IGNORE] * (len(item.labels) - len(expected))
    # The chat turn ends with <|im_end|> and a newline; a plain prompt's answer with SmolLM2's EOS.
    assert target_text(tokenizer, item) == ("Conservative<|im_end|>\n" if chat_template else " Conservative<|im_end|>")


def test_extractive_qa_target_is_the_first_answer_or_the_abstention(tokenizer) -> None:
    builder = builder_for(tokenizer, template=QA_TEMPLATE, instruction=QA_INSTRUCTION, chat_template=True, limit=128)

    def target(answers: list[str]) -> str:
        example = Example(
            id="q", input="Paris is the capital of France.", reference=answers[0] if answers else "",
            fields={"question": "What is the capital of France?"}, answers=answers,
        )  # fmt: skip
        return target_text(
            tokenizer, make_item(builder=builder, tokenizer=tokenizer, example=example, max_target_tokens=48, task=QA)
        )

    assert target([]) == "unanswerable<|im_end|>\n"
    assert target(["Paris", "paris"]) == "Paris<|im_end|>\n"


def test_an_unknown_label_is_a_task_error(tokenizer) -> None:
    builder = builder_for(tokenizer, template="{input}", instruction="Which party?", chat_template=True, limit=128)
    example = Example(id="s9", input="A speech.", reference="LD")
    with pytest.raises(TaskError, match="'LD' is not in task.labels"):
        make_item(builder=builder, tokenizer=tokenizer, example=example, max_target_tokens=48, task=CLASSES)


# 5. Label scoring.


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    return model.eval()


PARTIES = {"Con": "Conservative Party", "Lab": "Labour Party"}
SPEECHES = [
    "We will cut taxes.",
    "The health service needs more nurses, more doctors and more money in every region of the country.",
    "Order.",
    "Our schools must be rebuilt.",
]


@pytest.mark.parametrize("chat_template", [True, False])
@pytest.mark.parametrize("forced", ["Con", "Lab"])
def test_label_scoring_picks_the_label_whose_answer_is_forced(
    tokenizer, tiny_model, chat_template: bool, forced: str
) -> None:
    builder = builder_for(
        tokenizer, template="{input}", instruction="Which party?", chat_template=chat_template, limit=128
    )
    answers = answer_ids(builder=builder, words=PARTIES)
    # Multi-token verbalisers that part at their first token: the scores must sum the whole answer.
    words_only = {
        label: tokenizer(w if chat_template else f" {w}", add_special_tokens=False).input_ids
        for label, w in PARTIES.items()
    }
    assert all(len(ids) > 1 for ids in words_only.values())
    assert answers["Con"][0] != answers["Lab"][0]
    bonus = torch.zeros(len(tokenizer))
    bonus[answers[forced]] = 50.0
    hook = tiny_model.lm_head.register_forward_hook(lambda module, inputs, output: output + bonus)
    try:
        prompts = [builder.build(text) for text in SPEECHES]
        rows = label_predictions(model=tiny_model, builder=builder, prompts=prompts, words=PARTIES, batch_size=3)
    finally:
        hook.remove()
    assert [row["label"] for row in rows] == [forced] * len(SPEECHES)
    other = "Lab" if forced == "Con" else "Con"
    assert all(row["label_scores"][forced] > row["label_scores"][other] + 10 for row in rows)


def test_sequence_log_probs_match_one_unpadded_pass_per_row(tokenizer, tiny_model) -> None:
    builder = builder_for(tokenizer, template="{input}", instruction="Which party?", chat_template=True, limit=128)
    prompts = [builder.build(text).input_ids for text in SPEECHES]
    answers = list(answer_ids(builder=builder, words=PARTIES).values())
    answers = [answers[i % 2] + ([] if i < 2 else answers[0][:1]) for i in range(len(prompts))]  # lengths differ too
    assert len({len(p) for p in prompts}) == len(prompts)
    scores = sequence_log_probs(
        model=tiny_model, prompts=prompts, answers=answers, pad_id=tokenizer.pad_token_id, batch_size=len(prompts)
    )
    with torch.no_grad():
        for prompt, answer, score in zip(prompts, answers, scores, strict=True):
            logits = tiny_model(input_ids=torch.tensor([prompt + answer])).logits[0].float()
            log_probs = torch.log_softmax(logits, dim=-1)
            expected = sum(float(log_probs[len(prompt) - 1 + j, token]) for j, token in enumerate(answer))
            assert score == pytest.approx(expected, abs=1e-4)


# 6. Classification scores.


def test_classification_scores_by_hand() -> None:
    rows = [  # (gold, scored label, free generation)
        ("Lab", "Lab", "Labour."),
        ("Lab", "Con", "labour party"),
        ("Con", "Con", "I think Labour"),
        ("Con", "Lab", "Conservative or Labour"),
        ("Con", "Con", "Conservative"),
        ("Con", "Lab", "Labour"),
    ]
    result = task_named("classification").score(
        rows=[{"id": f"s{i}", "reference": g, "label": p, "prediction": text} for i, (g, p, text) in enumerate(rows)],
        settings=CLASSES,
    )
    metrics = result["metrics"]
    assert metrics["accuracy"] == pytest.approx(3 / 6)
    assert metrics["mean_values"] == {"accuracy": pytest.approx(3 / 6)}
    assert [r["values"]["accuracy"] for r in metrics["per_example"]] == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    # Lab: TP 1, FP 2, FN 1 -> precision 1/3, recall 1/2, F1 = 2PR / (P + R) = 0.4.
    assert metrics["f1"]["value"] == pytest.approx(0.4) and "Lab" in metrics["f1"]["kind"]
    confusion = metrics["confusion"]
    assert confusion["labels"] == ["Con", "Lab"] and confusion["rows"] == "gold"
    assert confusion["matrix"] == [[2, 2], [1, 1]]  # gold Con: 2 right, 2 called Lab; gold Lab: 1 and 1
    assert [r["generated_label"] for r in metrics["per_example"]] == ["Lab", "Lab", None, None, "Con", "Lab"]
    generation = metrics["generation"]
    assert generation["parse_rate"] == pytest.approx(4 / 6)
    assert generation["accuracy"] == pytest.approx(3 / 6)  # Lab, Lab, Con right; the last Labour wrong
    assert generation["agrees_with_scored_label"] == pytest.approx(3 / 6)


def test_a_gold_label_outside_the_tasks_labels_is_refused() -> None:
    rows = [{"id": "a", "reference": "LD", "label": "Con", "prediction": "Conservative"}]
    with pytest.raises(TaskError, match="'LD'"):
        task_named("classification").score(rows=rows, settings=CLASSES)


# 7. Extractive QA scores.


def test_extractive_qa_scores_by_hand() -> None:
    rows = [
        {"id": "q1", "answers": [], "prediction": "Unanswerable."},
        {"id": "q2", "answers": ["Paris"], "prediction": "unanswerable"},
        {"id": "q3", "answers": ["the Eiffel Tower", "Eiffel Tower in Paris"], "prediction": "Eiffel Tower"},
        {"id": "q4", "answers": ["Marie Curie"], "prediction": "Pierre and Marie Curie"},
        {"id": "q5", "answers": [], "prediction": "Paris"},
    ]
    result = predictions_result(rows=rows, task=QA, variant="base", spec=None, predictions_file="p.jsonl")
    assert result["run"]["task"] == "extractive_qa" and result["run"]["metrics"] == ["f1", "exact"]
    metrics = result["metrics"]
    # q4: 2 shared tokens of 4 predicted and 2 gold -> precision 1/2, recall 1, F1 2/3.
    f1 = [1.0, 0.0, 1.0, 2 / 3, 0.0]
    exact = [1.0, 0.0, 1.0, 0.0, 0.0]
    assert [r["values"]["f1"] for r in metrics["per_example"]] == pytest.approx(f1)
    assert [r["values"]["exact"] for r in metrics["per_example"]] == exact
    assert [r["abstained"] for r in metrics["per_example"]] == [True, True, False, False, False]
    assert metrics["mean_values"] == pytest.approx({"f1": sum(f1) / 5, "exact": 2 / 5})
    assert mean_values(metrics["per_example"], ["f1"]) == pytest.approx({"f1": 8 / 15})
    squad = metrics["squad_v2"]
    assert squad["count"] == 5 and squad["abstained"] == pytest.approx(2 / 5)
    assert squad["answerable"] == pytest.approx({"exact": 1 / 3, "f1": 5 / 9, "abstained": 1 / 3, "count": 3})
    assert squad["unanswerable"] == pytest.approx({"exact": 1 / 2, "f1": 1 / 2, "abstained": 1 / 2, "count": 2})


# 8. Comparisons of a classification study.

IDS = [f"e{i}" for i in range(10)]
GOLD = ["Con", "Lab"] * 5
STATISTICS = {"metric": None, "resamples": 200, "seed": 0, "confidence": 0.95, "pairs": [], "primary": None}


def lora(rank: int) -> VariantSpec:
    return VariantSpec(
        kind="lora", train_size=100, seed=1, learning_rate=1e-3, rank=rank, alpha=2.0 * rank, targets="qv"
    )


def labelled(name: str, spec: VariantSpec | None, predicted: list[str], generations: list[str]) -> VariantScores:
    per_example = [
        {"id": i, "gold": g, "predicted": p, "values": {"accuracy": float(g == p)}}
        for i, g, p in zip(IDS, GOLD, predicted, strict=True)
    ]
    predictions = [
        {"id": i, "prediction": text, "reference": g, "label": p}
        for i, g, p, text in zip(IDS, GOLD, predicted, generations, strict=True)
    ]
    return VariantScores(name=name, spec=spec, per_example=per_example, predictions=predictions)


def test_compare_variants_for_classification() -> None:
    flip = {"Con": "Lab", "Lab": "Con"}
    base_predicted = [flip[g] if i in (0, 1, 2, 3, 4, 5) else g for i, g in enumerate(GOLD)]  # 4 of 10 right
    r2_predicted = [flip[g] if i in (0, 6, 7) else g for i, g in enumerate(GOLD)]  # 7 of 10 right
    words = {"Con": "Conservative", "Lab": "Labour"}
    base_generations = ["", "", "I think Labour", *(words[p] for p in base_predicted[3:])]
    variants = [
        labelled("base", None, base_predicted, base_generations),
        labelled(lora(2).name, lora(2), r2_predicted, [words[p] for p in r2_predicted]),
        labelled(lora(4).name, lora(4), list(GOLD), [words[g] for g in GOLD]),
    ]
    result = compare_variants(
        variants=variants,
        eval_inputs={i: f"Speech {i} about the budget." for i in IDS},
        instruction="Which party?",
        statistics=STATISTICS,
        task=CLASSES,
    )
    assert result["run"]["task"] == "classification" and result["run"]["metric"] == "accuracy"
    per_variant = result["metrics"]["variants"]
    for name, right in (("base", 4), (lora(2).name, 7), (lora(4).name, 10)):
        interval = per_variant[name]["intervals"]["accuracy"]
        assert interval["method"] == "Wilson score"
        assert interval["mean"] == pytest.approx(right / 10)
        assert 0.0 <= interval["low"] < interval["mean"] or right == 0
        assert interval["high"] <= 1.0
    perfect = per_variant[lora(4).name]["intervals"]["accuracy"]
    # All 10 right: Wilson's low end is n / (n + z^2), not 1.
    assert perfect["high"] == 1.0 and perfect["low"] == pytest.approx(10 / (10 + Z95**2), abs=1e-5)
    assert "f1" in per_variant["base"]["task_statistics"]

    # Hand-counted discordant pairs: base right on 6-9; r2 right on 1-5, 8, 9; r4 on all.
    r2, r4 = "lora-r2-qv-n100", "lora-r4-qv-n100"  # the seed groups compared
    expected = {
        ("base", r2): (2, 5),  # base only: 6, 7; r2 only: 1, 2, 3, 4, 5
        ("base", r4): (0, 6),
        (r2, r4): (0, 3),
    }
    records = {(r["a"], r["b"]): r for r in result["metrics"]["comparisons"]}
    assert set(records) == set(expected)
    for pair, (a_only, b_only) in expected.items():
        mcnemar = records[pair]["task_statistics"]["mcnemar"]
        assert (mcnemar["a_only_correct"], mcnemar["b_only_correct"]) == (a_only, b_only)
        assert mcnemar["discordant"] == a_only + b_only
        # Exact two-sided binomial: 2 P(X <= min) under Binomial(n, 1/2), at most 1.
        n = a_only + b_only
        p = min(1.0, 2 * sum(math.comb(n, k) for k in range(min(a_only, b_only) + 1)) / 2**n)
        assert mcnemar["p_value"] == pytest.approx(p)
        # Accuracy is 0/1 per example: its paired interval is the paired-proportion one, not the bootstrap.
        assert records[pair]["difference"]["method"] == PAIRED_PROPORTIONS
    # base right on 4, r4 on all 10: p12 = 1/12, p21 = 7/12 (Bonett-Price), 0.5 -+ 1.96 x 0.186339.
    difference = records[("base", r4)]["difference"]
    assert (difference["low"], difference["high"]) == pytest.approx((0.134782, 0.865218), abs=1e-6)

    rates = per_variant["base"]["failure_modes"]["rates"]
    assert rates == pytest.approx({"unparseable": 3 / 10, "empty": 2 / 10})
    assert per_variant[lora(2).name]["failure_modes"]["rates"] == {"unparseable": 0.0, "empty": 0.0}


# 9. Wilson intervals and cutting intervals to a range.


def test_wilson_interval_by_hand() -> None:
    n, p, z = 10, 0.8, Z95
    centre, spread = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low, high = (centre - spread) / (1 + z * z / n), (centre + spread) / (1 + z * z / n)
    interval = wilson_interval([1.0] * 8 + [0.0] * 2, confidence=0.95)
    assert (interval.low, interval.high) == (pytest.approx(low, abs=1e-6), pytest.approx(high, abs=1e-6))
    assert (interval.low, interval.high) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))
    assert interval.mean == 0.8 and interval.method == "Wilson score"


def test_wilson_interval_at_the_edges_and_its_input() -> None:
    none_right = wilson_interval([0, 0, 0, 0])
    assert none_right.low == 0.0 and none_right.high == pytest.approx(Z95**2 / (4 + Z95**2), abs=1e-5)
    all_right = wilson_interval([1, 1, 1, 1])
    assert all_right.high == 1.0 and all_right.low == pytest.approx(4 / (4 + Z95**2), abs=1e-5)
    with pytest.raises(ValueError, match="0/1"):
        wilson_interval([1.0, 0.5, 0.0])
    with pytest.raises(ValueError):
        wilson_interval([])


def test_within_cuts_and_says_so() -> None:
    wide = Interval(mean=0.95, low=0.8, high=1.1, confidence=0.95, method="studentised bootstrap, t floor")
    cut = within(wide, low=0.0, high=1.0)
    assert (cut.mean, cut.low, cut.high, cut.confidence) == (0.95, 0.8, 1.0, 0.95)
    assert cut.method == "studentised bootstrap, t floor, cut to [0, 1]"
    below = within(Interval(mean=-0.9, low=-1.3, high=-0.5, confidence=0.9), low=-1.0, high=1.0)
    assert (below.low, below.high) == (-1.0, -0.5) and "cut to [-1, 1]" in below.method
    inside = Interval(mean=0.5, low=0.2, high=0.7, confidence=0.95)
    assert within(inside, low=0.0, high=1.0) == inside


# 10. Config checks.


def classification_config() -> dict[str, Any]:
    """The tiny config with configs/tiny-classification.yaml's prompt and task blocks."""
    config = tiny_config()
    shipped = yaml.safe_load((REPO / "configs" / "tiny-classification.yaml").read_text())
    config["data"]["dataset"] = shipped["data"]["dataset"]
    config["prompt"].update(shipped["prompt"])
    config["task"].update(shipped["task"])
    config["statistics"]["metric"] = shipped["statistics"]["metric"]
    return config


def glue_config(template: str = PAIR_TEMPLATE) -> dict[str, Any]:
    config = classification_config()
    config["data"]["dataset"] = "glue"
    config["prompt"]["template"] = template
    config["task"] = {"name": "classification", "labels": {"equivalent": "yes", "not_equivalent": "no"}}
    return config


def problems_of(config: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as error:
        validate_config(config, source="study.yaml")
    assert "study.yaml" in str(error.value)
    return str(error.value)


def test_a_valid_classification_config_passes() -> None:
    config = validate_config(classification_config(), source="study.yaml")
    assert (
        config["task"]["name"] == "classification"
        and config["prompt"]["template"] == "Debate: {agenda}\nSpeech: {input}"
    )
    validate_config(glue_config(), source="glue.yaml")


def test_a_dataset_of_another_task_is_refused_naming_the_task() -> None:
    config = glue_config()
    config["task"] = {"name": "summarisation"}
    config["statistics"]["metric"] = "rougeL"
    assert re.search(
        r"data.dataset glue holds classification examples but task.name is summarisation", problems_of(config)
    )


def test_template_fields_must_fit_the_dataset() -> None:
    missing = problems_of(glue_config("{input}"))
    assert "prompt.template: glue examples need {sentence2}" in missing
    unknown = problems_of(glue_config(PAIR_TEMPLATE + "\nQuestion: {question}"))
    assert "prompt.template: {question} is not a field of data.dataset glue" in unknown
    commons = classification_config()
    commons["prompt"]["template"] = "Speech: {input}\nSpeaker: {speaker}"
    assert "prompt.template: {speaker} is not a field of data.dataset commons" in problems_of(commons)


def test_positive_label_must_be_a_label() -> None:
    config = classification_config()
    config["task"]["positive_label"] = "Labour"  # a verbaliser, not a label
    assert "task.positive_label: 'Labour' is not one of task.labels (Con, Lab)" in problems_of(config)


def test_a_metric_of_another_task_is_refused() -> None:
    config = classification_config()
    config["statistics"]["metric"] = "rougeL"
    assert "statistics.metric: 'rougeL' is not a metric of the classification task" in problems_of(config)


def test_the_config_check_knows_each_tasks_metrics() -> None:
    """The config check's table (config.py, where only snakemake is installed) is the tasks' own."""
    from lora_study.core.config import TASK_DEFAULT_METRIC, TASK_METRICS
    from lora_study.tasks import TASK_NAMES, task_named
    from lora_study.tasks.rouge import ROUGE_TYPES

    assert set(TASK_METRICS) == set(TASK_NAMES) and TASK_METRICS["summarisation"] == ROUGE_TYPES
    for name in TASK_NAMES:
        task = task_named(name)
        assert task.metrics == TASK_METRICS[name] and task.default_metric == TASK_DEFAULT_METRIC[name]
        assert set(task.binary_metrics) <= set(task.metrics)
