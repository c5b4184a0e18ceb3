"""The prompt builder: the instruction always survives truncation; decoding never sees the prompt."""

from __future__ import annotations

import pytest
import torch

from lora_study.model.prompts import PromptBuilder, PromptError, generated_token_ids

INSTRUCTION = "Summarize the following scientific abstract in 2-3 sentences."
LONG_INPUT = " ".join(f"Sentence number {i} describes a result about adapters." for i in range(200))


@pytest.mark.parametrize("chat_template", [True, False])
def test_truncation_keeps_instruction_and_fits(tokenizer, chat_template: bool) -> None:
    builder = PromptBuilder(
        tokenizer=tokenizer, instruction=INSTRUCTION, chat_template=chat_template, max_input_tokens=96
    )
    prompt = builder.build(LONG_INPUT)
    text = tokenizer.decode(prompt.input_ids)
    assert prompt.truncated
    assert len(prompt.input_ids) <= 96
    assert len(prompt.input_ids) >= 90, "truncation should use the budget, not throw most input away"
    assert INSTRUCTION in text
    assert LONG_INPUT.startswith(prompt.input_text)
    assert prompt.input_text in text
    # The answer cue stays at the end: the chat turn for the assistant, or "Summary:".
    assert text.endswith("<|im_start|>assistant\n" if chat_template else "Summary:")


def test_short_input_is_not_truncated(tokenizer) -> None:
    builder = PromptBuilder(tokenizer=tokenizer, instruction=INSTRUCTION, chat_template=True, max_input_tokens=512)
    prompt = builder.build("A short abstract.")
    assert not prompt.truncated
    assert prompt.input_text == "A short abstract."
    assert prompt.input_ids == tokenizer(builder.render("A short abstract."), add_special_tokens=False).input_ids


def test_chat_prompt_has_no_doubled_bos(tokenizer) -> None:
    builder = PromptBuilder(tokenizer=tokenizer, instruction=INSTRUCTION, chat_template=True, max_input_tokens=512)
    ids = builder.build("Text.").input_ids
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert ids[1] != ids[0]


def test_budget_too_small_for_instruction_is_an_error(tokenizer) -> None:
    with pytest.raises(PromptError, match="max_input_tokens=20"):
        PromptBuilder(tokenizer=tokenizer, instruction=INSTRUCTION, chat_template=True, max_input_tokens=20)


def test_completion_text_ends_the_turn(tokenizer) -> None:
    builder = PromptBuilder(tokenizer=tokenizer, instruction=INSTRUCTION, chat_template=True, max_input_tokens=512)
    assert builder.completion_text("The summary.") == "The summary.<|im_end|>\n"
    plain = PromptBuilder(tokenizer=tokenizer, instruction=INSTRUCTION, chat_template=False, max_input_tokens=512)
    assert plain.completion_text("The summary.") == f" The summary.{tokenizer.eos_token}"


def test_generated_tokens_exclude_prompt_and_stop_at_eos() -> None:
    prompt_length = 4
    sequences = torch.tensor(
        [
            [0, 0, 11, 12, 21, 22, 2, 0],  # left-padded prompt, 2 new tokens, EOS, padding
            [13, 14, 15, 16, 31, 32, 33, 34],  # ran to the limit
        ]
    )
    rows = generated_token_ids(sequences=sequences, prompt_length=prompt_length, stop_ids={2})
    assert rows == [[21, 22], [31, 32, 33, 34]]


def test_decoded_prediction_never_contains_the_prompt(tokenizer) -> None:
    builder = PromptBuilder(tokenizer=tokenizer, instruction=INSTRUCTION, chat_template=True, max_input_tokens=64)
    prompt = builder.build(LONG_INPUT)
    answer = tokenizer("The adapters work.", add_special_tokens=False).input_ids
    sequence = torch.tensor([prompt.input_ids + answer + [tokenizer.eos_token_id]])
    (row,) = generated_token_ids(
        sequences=sequence, prompt_length=len(prompt.input_ids), stop_ids={tokenizer.eos_token_id}
    )
    assert tokenizer.decode(row, skip_special_tokens=True) == "The adapters work."


@pytest.mark.parametrize("chat_template", [True, False])
def test_input_mask_marks_the_input_tokens_and_nothing_else(tokenizer, chat_template: bool) -> None:
    builder = PromptBuilder(
        tokenizer=tokenizer, instruction=INSTRUCTION, chat_template=chat_template, max_input_tokens=96
    )
    for text in ("Adapters learn less and forget less.", LONG_INPUT, "Summarize the following scientific abstract"):
        prompt = builder.build(text)
        mask = builder.input_mask(prompt)
        assert len(mask) == len(prompt.input_ids) and not mask[0]
        start, end = mask.index(True), len(mask) - mask[::-1].index(True)
        assert all(mask[start:end])  # one contiguous span
        assert tokenizer.decode(prompt.input_ids[start:end]).strip() == prompt.input_text
        # Everything outside the span is the prompt of an empty input, token for token.
        empty = builder.build("")
        outside = prompt.input_ids[:start] + prompt.input_ids[end:]
        assert tokenizer.decode(outside).replace("\n", "") == tokenizer.decode(empty.input_ids).replace("\n", "")


def test_input_mask_refuses_a_prompt_from_another_builder(tokenizer) -> None:
    chat = PromptBuilder(tokenizer=tokenizer, instruction=INSTRUCTION, chat_template=True, max_input_tokens=96)
    plain = PromptBuilder(tokenizer=tokenizer, instruction=INSTRUCTION, chat_template=False, max_input_tokens=96)
    with pytest.raises(PromptError):
        plain.input_mask(chat.build("Some text."))
