"""Prompt templates (`prompt.template`): their placeholders and what makes one valid. Torch-free,
so the config check can use it before any job starts."""

from __future__ import annotations

import string

INPUT = "input"  # the template's placeholder for the long text, the only part that may be cut


def template_names(template: str) -> list[str]:
    """The placeholders of a prompt template, in order."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


def template_problem(template: str) -> str | None:
    """Why `template` cannot be a prompt template, or None: it must hold `{input}` once, and
    only plain `{name}` placeholders (no formats, conversions, indexing), each once."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        return f"{template!r} is not a valid template ({error}); write literal braces as {{{{ and }}}}"
    names = [name for _, name, _, _ in parsed if name is not None]
    if names.count(INPUT) != 1:
        return f"{template!r} must contain {{{INPUT}}} exactly once (the long text, the part that may be cut)"
    for _, name, spec, conversion in parsed:
        if name is not None and (not name.isidentifier() or spec or conversion):
            return f"{template!r}: placeholder {{{name}}} must be a plain field name such as {{question}}"
    if len(set(names)) != len(names):
        return f"{template!r} repeats a placeholder"
    return None
