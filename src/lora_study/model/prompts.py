"""The one prompt builder every stage uses (evaluation, training, quantisation, serving).

A prompt is the instruction, then the body (`prompt.template` filled with the example's long
text `{input}` and its fixed fields such as `{sentence2}` or `{question}`), then, in a plain
prompt, the cue where the answer begins (`prompt.cue`).

Two rules the hand-run studies broke, enforced here:
- the instruction, the cue and the fixed fields (the question, the second sentence) are
  never truncated: only the long input text is cut, token-exactly, until the whole prompt
  fits `max_input_tokens`;
- predictions are decoded from the generated token positions only, so the prompt can
  never leak into a prediction (no string surgery on decoded text).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from lora_study.core.config import TEMPLATE_INPUT as INPUT
from lora_study.core.config import template_names, template_problem

PLAIN_TEMPLATE = "{instruction}\n\n{body}\n\n{cue}"


class PromptError(ValueError):
    """The prompt cannot be built as configured."""


@dataclass(frozen=True)
class Prompt:
    input_ids: list[int]
    input_text: str  # the input text as it appears in the prompt (possibly cut)
    truncated: bool
    fields: Mapping[str, str] = field(default_factory=dict)  # the fixed fields, whole


@dataclass(frozen=True)
class PromptBuilder:
    tokenizer: PreTrainedTokenizerBase
    instruction: str
    chat_template: bool
    max_input_tokens: int
    template: str = "{input}"
    cue: str = "Summary:"

    def __post_init__(self) -> None:
        if self.chat_template and not getattr(self.tokenizer, "chat_template", None):
            raise PromptError("prompt.chat_template is true but the model's tokenizer has no chat template")
        problem = template_problem(self.template)
        if problem:
            raise PromptError(f"prompt.template: {problem}")
        if not self.field_names:  # with fixed fields the room left depends on each example's
            self._check_room({})

    @classmethod
    def from_config(cls, *, tokenizer: PreTrainedTokenizerBase, prompt: dict[str, Any]) -> PromptBuilder:
        return cls(
            tokenizer=tokenizer,
            instruction=prompt["instruction"],
            chat_template=prompt["chat_template"],
            max_input_tokens=prompt["max_input_tokens"],
            template=prompt.get("template", "{input}"),
            cue=prompt.get("cue", "Summary:"),
        )

    @property
    def field_names(self) -> tuple[str, ...]:
        """The template's fixed fields (every placeholder but `{input}`), in order."""
        return tuple(name for name in template_names(self.template) if name != INPUT)

    def body(self, input_text: str, fields: Mapping[str, str]) -> str:
        """The template filled in: the example's part of the prompt."""
        missing = [name for name in self.field_names if name not in fields]
        if missing:
            raise PromptError(
                f"prompt.template needs the field(s) {', '.join(missing)} but the example has "
                f"{', '.join(sorted(fields)) or 'none'}"
            )
        return self.template.format(**{**fields, INPUT: input_text})

    def render(self, input_text: str, fields: Mapping[str, str] | None = None) -> str:
        """The prompt as text, ending where the model's answer begins."""
        return self._wrap(self.body(input_text, fields or {}))

    def _wrap(self, body: str) -> str:
        if self.chat_template:
            messages = [{"role": "user", "content": f"{self.instruction}\n\n{body}"}]
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return PLAIN_TEMPLATE.format(instruction=self.instruction, body=body, cue=self.cue)

    def build(self, input_text: str, *, fields: Mapping[str, str] | None = None) -> Prompt:
        """Token ids of the prompt for `input_text` (and the example's fixed `fields`),
        cutting the input text (only) to fit: the fields are kept whole."""
        fields = dict(fields or {})
        ids = self._encode(input_text, fields)
        if len(ids) <= self.max_input_tokens:
            return Prompt(input_ids=ids, input_text=input_text, truncated=False, fields=fields)
        input_ids = self.tokenizer(input_text, add_special_tokens=False).input_ids
        keep = self.max_input_tokens - self._check_room(fields)
        # Re-tokenising a cut text can merge tokens differently at the seams, so shrink
        # until the rendered prompt really fits; this converges in a step or two.
        while keep > 0:
            cut = self.tokenizer.decode(input_ids[:keep], skip_special_tokens=True)
            ids = self._encode(cut, fields)
            if len(ids) <= self.max_input_tokens:
                return Prompt(input_ids=ids, input_text=cut, truncated=True, fields=fields)
            keep -= len(ids) - self.max_input_tokens
        raise PromptError(f"cannot fit any input into prompt.max_input_tokens={self.max_input_tokens}")

    def _check_room(self, fields: Mapping[str, str]) -> int:
        """The tokens a prompt takes with an empty input; an error when that leaves no room."""
        overhead = len(self._encode("", fields))
        if overhead >= self.max_input_tokens:
            what = "the instruction, template and fixed fields" if fields else "the instruction and template"
            raise PromptError(
                f"prompt.max_input_tokens={self.max_input_tokens} leaves no room for the input: "
                f"{what} alone take {overhead} tokens"
            )
        return overhead

    def completion_text(self, reference: str) -> str:
        """What the model should produce after the prompt for `reference`, end marker included
        (the chat template's end of turn, or the EOS token): used as the training target."""
        if self.chat_template:
            messages = [
                {"role": "user", "content": f"{self.instruction}\n\nX"},
                {"role": "assistant", "content": reference},
            ]
            full = self.tokenizer.apply_chat_template(messages, tokenize=False)
            prefix = self._wrap("X")
            if not full.startswith(prefix):
                raise PromptError("the chat template renders the prompt differently inside a conversation")
            return full[len(prefix) :]
        return f" {reference}{self.tokenizer.eos_token or ''}"

    def input_mask(self, prompt: Prompt) -> list[bool]:
        """Per token of `prompt`, whether it belongs to the example's own text (its input and
        fixed fields) rather than the template or the instruction (which every prompt shares).
        A token is the example's if its characters overlap one of those spans in the rendered
        prompt; special tokens (no characters) never are. Used to pool hidden states over the
        example's own tokens."""
        body = self.body(prompt.input_text, prompt.fields)
        text = self._wrap(body)
        offset = self._body_offset(text, body)
        spans = [(offset + start, offset + end) for start, end in self._value_spans(prompt.input_text, prompt.fields)]
        bos = self.tokenizer.bos_token
        add_special = not (self.chat_template and bos and text.startswith(bos))
        encoded = self.tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
        if list(encoded.input_ids) != list(prompt.input_ids):
            raise PromptError("the prompt's tokens differ from its rendered text: was it built by another builder?")
        return [
            token_end > token_start and any(token_end > start and token_start < end for start, end in spans)
            for token_start, token_end in encoded.offset_mapping
        ]

    def _value_spans(self, input_text: str, fields: Mapping[str, str]) -> list[tuple[int, int]]:
        """Character spans, within the body, of the input text and every fixed field."""
        values = {**fields, INPUT: input_text}
        spans, position = [], 0
        for literal, name, _, _ in string.Formatter().parse(self.template):
            position += len(literal)  # parse() gives literal text with {{ and }} already unescaped
            if name is not None:
                spans.append((position, position + len(values[name])))
                position += len(values[name])
        return spans

    def _body_offset(self, text: str, body: str) -> int:
        """Where the body starts in the rendered prompt: the one place such that cutting it
        out leaves the prompt of an empty body (the body may also occur in the instruction)."""
        empty = self._wrap("")
        position = text.find(body)
        while position != -1:
            if text[:position] + text[position + len(body) :] == empty:
                return position
            position = text.find(body, position + 1)
        raise PromptError("the template does not insert the example's text verbatim; cannot find its tokens")

    def _encode(self, input_text: str, fields: Mapping[str, str] | None = None) -> list[int]:
        text = self.render(input_text, fields)
        # Chat templates that need a BOS write it themselves; adding another would double it.
        bos = self.tokenizer.bos_token
        add_special = not (self.chat_template and bos and text.startswith(bos))
        return list(self.tokenizer(text, add_special_tokens=add_special).input_ids)


def generated_token_ids(*, sequences: torch.Tensor, prompt_length: int, stop_ids: set[int]) -> list[list[int]]:
    """The tokens each row generated after the (left-padded) prompt, up to and excluding
    the first stop token: the prompt positions are cut off by index, never by text."""
    rows = []
    for row in sequences[:, prompt_length:].tolist():
        end = next((i for i, token in enumerate(row) if token in stop_ids), len(row))
        rows.append(row[:end])
    return rows
