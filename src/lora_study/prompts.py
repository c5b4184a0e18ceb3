"""The one prompt builder every stage uses (evaluation, training, quantisation, serving).

Two rules the hand-run studies broke, enforced here:
- the instruction (and the cue that asks for the summary) is never truncated: only the
  input text is cut, token-exactly, until the whole prompt fits `max_input_tokens`;
- predictions are decoded from the generated token positions only, so the prompt can
  never leak into a prediction (no string surgery on decoded text).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

PLAIN_TEMPLATE = "{instruction}\n\n{input}\n\nSummary:"


class PromptError(ValueError):
    """The prompt cannot be built as configured."""


@dataclass(frozen=True)
class Prompt:
    input_ids: list[int]
    input_text: str  # the input text as it appears in the prompt (possibly cut)
    truncated: bool


@dataclass(frozen=True)
class PromptBuilder:
    tokenizer: PreTrainedTokenizerBase
    instruction: str
    chat_template: bool
    max_input_tokens: int

    def __post_init__(self) -> None:
        if self.chat_template and not getattr(self.tokenizer, "chat_template", None):
            raise PromptError("prompt.chat_template is true but the model's tokenizer has no chat template")
        overhead = len(self._encode(""))
        if overhead >= self.max_input_tokens:
            raise PromptError(
                f"prompt.max_input_tokens={self.max_input_tokens} leaves no room for the input: "
                f"the instruction and template alone take {overhead} tokens"
            )

    @classmethod
    def from_config(cls, *, tokenizer: PreTrainedTokenizerBase, prompt: dict[str, Any]) -> PromptBuilder:
        return cls(
            tokenizer=tokenizer,
            instruction=prompt["instruction"],
            chat_template=prompt["chat_template"],
            max_input_tokens=prompt["max_input_tokens"],
        )

    def render(self, input_text: str) -> str:
        """The prompt as text, ending where the model's answer begins."""
        if self.chat_template:
            messages = [{"role": "user", "content": f"{self.instruction}\n\n{input_text}"}]
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return PLAIN_TEMPLATE.format(instruction=self.instruction, input=input_text)

    def build(self, input_text: str) -> Prompt:
        """Token ids of the prompt for `input_text`, cutting the input (only) to fit."""
        ids = self._encode(input_text)
        if len(ids) <= self.max_input_tokens:
            return Prompt(input_ids=ids, input_text=input_text, truncated=False)
        input_ids = self.tokenizer(input_text, add_special_tokens=False).input_ids
        keep = self.max_input_tokens - len(self._encode(""))
        # Re-tokenising a cut text can merge tokens differently at the seams, so shrink
        # until the rendered prompt really fits; this converges in a step or two.
        while keep > 0:
            cut = self.tokenizer.decode(input_ids[:keep], skip_special_tokens=True)
            ids = self._encode(cut)
            if len(ids) <= self.max_input_tokens:
                return Prompt(input_ids=ids, input_text=cut, truncated=True)
            keep -= len(ids) - self.max_input_tokens
        raise PromptError(f"cannot fit any input into prompt.max_input_tokens={self.max_input_tokens}")

    def completion_text(self, reference: str) -> str:
        """What the model should produce after the prompt for `reference`, end marker included
        (the chat template's end of turn, or the EOS token): used as the training target."""
        if self.chat_template:
            messages = [
                {"role": "user", "content": f"{self.instruction}\n\nX"},
                {"role": "assistant", "content": reference},
            ]
            full = self.tokenizer.apply_chat_template(messages, tokenize=False)
            prefix = self.render("X")
            if not full.startswith(prefix):
                raise PromptError("the chat template renders the prompt differently inside a conversation")
            return full[len(prefix) :]
        return f" {reference}{self.tokenizer.eos_token or ''}"

    def input_mask(self, prompt: Prompt) -> list[bool]:
        """Per token of `prompt`, whether it belongs to the example's input text rather than
        the template or the instruction (which every prompt shares). A token is the input's
        if its characters overlap the input's span in the rendered prompt; special tokens
        (no characters) never are. Used to pool hidden states over the example's own tokens."""
        text = self.render(prompt.input_text)
        start = self._input_offset(text, prompt.input_text)
        end = start + len(prompt.input_text)
        bos = self.tokenizer.bos_token
        add_special = not (self.chat_template and bos and text.startswith(bos))
        encoded = self.tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
        if list(encoded.input_ids) != list(prompt.input_ids):
            raise PromptError("the prompt's tokens differ from its rendered text: was it built by another builder?")
        return [
            token_end > start and token_start < end and token_end > token_start
            for token_start, token_end in encoded.offset_mapping
        ]

    def _input_offset(self, text: str, input_text: str) -> int:
        """Where the input starts in the rendered prompt: the one place such that cutting the
        input out leaves the prompt of an empty input (the input may also occur in the instruction)."""
        empty = self.render("")
        position = text.find(input_text)
        while position != -1:
            if text[:position] + text[position + len(input_text) :] == empty:
                return position
            position = text.find(input_text, position + 1)
        raise PromptError("the template does not insert the input text verbatim; cannot find its tokens")

    def _encode(self, input_text: str) -> list[int]:
        text = self.render(input_text)
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
