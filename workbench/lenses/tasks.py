"""Latent-language tasks: k-shot prompts built from a word table, independent of any tokenizer.

- translation: ``Français: "nuage" - 中文: "云"`` lines, then ``Français: "x" - 中文: "``;
- repetition: the same with the target language on both sides;
- cloze: masked sentences with their answers, then one cut right before its answer.
The demonstrations for each example are other concepts, drawn with a fixed seed.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from workbench.errors import ConfigError, DataError
from workbench.lenses.wordlists import WordTable, language_name

KINDS = ("translation", "repetition", "cloze")


@dataclass
class Example:
    """One prompt and the word it should be continued with, in every language of the table.

    ``forms[lang]`` holds every translation of the concept (the first is ``words[lang]``).
    """

    prompt: str
    words: dict[str, str]
    forms: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass
class LensTask:
    """A batch of prompts whose next token should be the target-language word."""

    kind: str
    source: str
    target: str
    examples: list[Example]
    n_unusable: int = 0  # cloze rows whose sentence does not end with the answer
    notes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        if self.kind == "translation":
            return f"translation {self.source}→{self.target}"
        return f"{self.kind} ({self.target})"


def _pair_line(src: str, tgt: str, a: str, b: str | None) -> str:
    return f'{language_name(src)}: "{a}" - {language_name(tgt)}: "' + (f'{b}"' if b is not None else "")


def _cloze_cut(sentence: str, answer: str) -> str | None:
    """The sentence up to (not including) its final answer, or None when it does not end with it."""
    at = sentence.rfind(answer)
    return sentence[:at] if at > 0 else None


def make_task(table: WordTable, kind: str, source: str, target: str, *, shots: int = 4, seed: int = 0, limit: int | None = None) -> LensTask:
    """Build the prompts of one task; ``source`` is ignored for repetition and cloze."""
    if kind not in KINDS:
        raise ConfigError(f"Unknown task kind {kind!r}.", hint=f"Choose one of: {', '.join(KINDS)}.")
    needed = [target] + ([source] if kind == "translation" else [])
    missing = [lang for lang in needed if lang not in table.languages]
    if missing:
        raise DataError(f"The word list has no {', '.join(missing)} words (it holds {', '.join(table.languages)}).",
                        path=table.source or None, hint="Choose languages the list holds, or load a list with them.")
    if len(table) < shots + 1:
        raise DataError(f"{len(table)} concepts are too few for {shots}-shot prompts.", path=table.source or None,
                        hint=f"Use at most {max(len(table) - 1, 0)} shots (the asked word is never a demonstration), "
                             "or a longer word list.")
    rng = random.Random(seed)
    src = source if kind == "translation" else target
    if kind == "cloze":
        cut = [_cloze_cut(c.get(target, ""), w[target]) for c, w in zip(table.cloze or [{}] * len(table), table.words, strict=True)]
        usable = [i for i, c in enumerate(cut) if c]
        if len(usable) < shots + 1:
            raise DataError(f"Only {len(usable)} concepts have a {target} cloze sentence ending with the answer; "
                            f"{shots}-shot prompts need {shots + 1}.", path=table.source or None,
                            hint="Use fewer shots, or the clean.csv layout with blank_prompt_translation_masked.")
    else:
        usable = list(range(len(table)))
    examples = []
    for i in usable[:limit] if limit else usable:
        demos = rng.sample([j for j in usable if j != i], shots)
        if kind == "cloze":
            lines = [table.cloze[j][target] for j in demos] + [cut[i]]
            prompt = "\n".join(lines)
        else:
            lines = [_pair_line(src, target, table.words[j][src], table.words[j][target]) for j in demos]
            prompt = "\n".join([*lines, _pair_line(src, target, table.words[i][src], None)])
        examples.append(Example(prompt, dict(table.words[i]), dict(table.forms[i])))
    return LensTask(kind, src, target, examples, n_unusable=len(table) - len(usable))
