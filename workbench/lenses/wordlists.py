"""Word tables for latent-language experiments: concepts × languages, read from CSV.

Four layouts are read into one ``WordTable``:
- a folder of ``<lang>/word_translation.csv`` files (the "Do Llamas Work in English?"
  authors' tables): one row per concept, a column per language code plus ``word_original``
  (the English word), each cell a Python-list string of translations (``"['nube', 'nubes']"``);
  rows of all files are merged on ``word_original`` and every translation is kept;
- a folder of ``<lang>/clean.csv`` files (the same paper's cleaned lists): joined on the
  English ``word_original``, with each language's masked cloze sentence;
- one file of either kind;
- a plain CSV whose header names languages (``en,fr,de,ru,zh``), or ``word,translation``
  with the two languages given by the caller.
Any cell may hold one word or such a list; the first translation is the one prompts show.
"""
from __future__ import annotations

import ast
import csv
import io
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from workbench.data.readers import read_user_text
from workbench.errors import ConfigError, DataError

LANGUAGE_NAMES = {
    "en": "English", "fr": "Français", "de": "Deutsch", "ru": "Русский", "zh": "中文", "es": "Español",
    "it": "Italiano", "pt": "Português", "nl": "Nederlands", "ja": "日本語", "ko": "한국어", "pl": "Polski",
    "uk": "Українська", "ar": "العربية", "hi": "हिन्दी", "tr": "Türkçe", "sv": "Svenska", "fi": "Suomi",
}
CLEAN_COLUMNS = ("lang", "word_original", "word_translation")
ORIGINAL = "word_original"  # the English word each concept was translated from
LANGUAGE_CODE = re.compile(r"[a-z]{2,3}")
MAX_CELL = 10_000  # characters: a cell is a few words, never a document


def language_name(code: str) -> str:
    """The language's own name, as written in prompts (``Français: "nuage"``)."""
    return LANGUAGE_NAMES.get(code, code)


@dataclass
class WordTable:
    """One row per concept: ``words[i][lang]`` the word prompts show, ``forms[i][lang]`` every
    translation (the first is ``words[i][lang]``), ``cloze[i][lang]`` a masked sentence where known."""

    languages: tuple[str, ...]
    words: list[dict[str, str]]
    cloze: list[dict[str, str]] = field(default_factory=list)
    source: str = ""
    forms: list[dict[str, tuple[str, ...]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.forms:
            self.forms = [{lang: (word,) for lang, word in row.items()} for row in self.words]

    def __len__(self) -> int:
        return len(self.words)


Rows = list[tuple[int, dict[str, str]]]  # (line number, cells by stripped column name)


def _read_rows(path: Path) -> tuple[list[str], Rows]:
    """Header and non-blank rows with their line numbers; names are stripped (some tables pad them)."""
    text = read_user_text(path)  # the readers' opener: a FIFO or device is refused, not hung on
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = [h.strip() for h in next(reader, [])]
        rows = [(reader.line_num, dict(zip(header, row, strict=False))) for row in reader if any(c.strip() for c in row)]
        return header, rows
    except csv.Error as exc:
        raise DataError(f"Malformed CSV: {exc}.", path=path, hint="Check quoting in the word list.") from None


def _forms(path: Path, line: int, row: dict[str, str], column: str) -> tuple[str, ...]:
    """The translations in one cell: a word, or a Python-list string such as ``['nube', 'nubes']``."""
    raw = (row.get(column) or "").strip()
    if len(raw) > MAX_CELL:
        raise DataError(f"A cell of {len(raw)} characters is not a word list.", path=path, line=line, field=column,
                        hint=f"Keep each cell under {MAX_CELL} characters.")
    if raw.startswith("["):
        try:
            value = ast.literal_eval(raw)  # literals only: a cell can never run code
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            value = None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise DataError(f"Cannot read {raw[:60]!r} as a list of words.", path=path, line=line, field=column,
                            hint="Write the cell as one word or as a list of quoted words: ['nube', 'nubes'].")
        forms = tuple(dict.fromkeys(v.strip() for v in value if v.strip()))
    else:
        forms = (raw,) if raw else ()
    if not forms:
        raise DataError("Empty word.", path=path, line=line, field=column, hint="Fill in the word or delete the row.")
    return forms


def _table(languages: tuple[str, ...], concepts: list[dict[str, tuple[str, ...]]], cloze: list[dict[str, str]],
           source: str) -> WordTable:
    return WordTable(languages, [{lang: forms[0] for lang, forms in c.items()} for c in concepts], cloze, source, concepts)


def _read_clean(path: Path) -> tuple[str, dict[str, tuple[tuple[str, ...], str]]]:
    """``lang`` and English word → (translations, masked cloze sentence) for one clean.csv."""
    header, rows = _read_rows(path)
    missing = [c for c in CLEAN_COLUMNS if c not in header]
    if missing:
        raise DataError(f"Missing column(s) {', '.join(missing)}.", path=path, line=1, field=missing[0],
                        hint=f"A clean.csv needs the columns {', '.join(CLEAN_COLUMNS)}.")
    langs = {r["lang"].strip() for _, r in rows if r.get("lang")}
    if len(langs) != 1:
        raise DataError(f"Expected one language per file, found {sorted(langs) or 'none'}.", path=path, field="lang",
                        hint="Split the file per language (<lang>/clean.csv).")
    out: dict[str, tuple[tuple[str, ...], str]] = {}
    for line, row in rows:
        en = _forms(path, line, row, ORIGINAL)[0]
        out.setdefault(en, (_forms(path, line, row, "word_translation"), (row.get("blank_prompt_translation_masked") or "").strip()))
    return langs.pop(), out


def _from_clean_files(files: list[Path], languages: tuple[str, ...] | None, source: str) -> WordTable:
    per_lang = dict(_read_clean(f) for f in files)
    langs = tuple(dict.fromkeys(["en", *sorted(per_lang)]))
    if languages:
        unknown = [lang for lang in languages if lang not in langs]
        if unknown:
            raise DataError(f"No words for language(s) {', '.join(unknown)}; found {', '.join(langs)}.", path=source,
                            hint="Add <lang>/clean.csv for them or choose other languages.")
        langs = tuple(dict.fromkeys(["en", *languages]))
    others = [lang for lang in langs if lang != "en"]
    keys = [en for en in per_lang[others[0]] if all(en in per_lang[lang] for lang in others)] if others else []
    concepts = [{"en": (en,), **{lang: per_lang[lang][en][0] for lang in others}} for en in keys]
    cloze = [{lang: per_lang[lang][en][1] for lang in per_lang if lang in langs and en in per_lang[lang] and per_lang[lang][en][1]}
             for en in keys]
    return _table(langs, concepts, cloze, source)


def _language_columns(path: Path, header: list[str], languages: tuple[str, ...] | None) -> dict[str, str]:
    """Language → column for a table whose columns are language codes (and maybe ``word_original``)."""
    unusable = [h for h in header if h != ORIGINAL and not LANGUAGE_CODE.fullmatch(h)]
    if unusable or not header:
        named = [h for h in header if LANGUAGE_CODE.fullmatch(h)]
        raise DataError(f"Cannot use column(s) {', '.join(map(repr, unusable or ['']))}: not a language code"
                        + (f" (the columns {', '.join(named)} are)." if named else "."),
                        path=path, line=1, field=unusable[0] if unusable else None,
                        hint="Name each column by a language code (en, fr, zh) or word_original, or use word,translation "
                             "or the clean.csv layout.")
    held = tuple(dict.fromkeys([h for h in header if h != ORIGINAL] + (["en"] if ORIGINAL in header else [])))
    keep = languages or held
    missing = [lang for lang in keep if lang not in held]
    if missing:
        raise DataError(f"No column for language(s) {', '.join(missing)}.", path=path, line=1, field=missing[0],
                        hint=f"The file holds {', '.join(held)}.")
    return {lang: lang for lang in keep}


def _concepts(path: Path, rows: Rows, columns: dict[str, str], original: bool) -> list[tuple[str, dict[str, tuple[str, ...]]]]:
    """(key, translations per language) per row; the key is ``word_original`` (also the first English
    form), else the English word, else the row itself."""
    out = []
    for line, row in rows:
        key = _forms(path, line, row, ORIGINAL)[0] if original else ""
        forms = {}
        for lang, col in columns.items():
            if lang == "en" and original:
                extra = _forms(path, line, row, col) if (row.get(col) or "").strip() else ()
                forms[lang] = tuple(dict.fromkeys((key, *extra)))
            else:
                forms[lang] = _forms(path, line, row, col)
        out.append((key or (forms["en"][0] if "en" in forms else f"{path}:{line}"), forms))
    return out


def _from_language_files(files: list[Path], languages: tuple[str, ...] | None, source: str) -> WordTable:
    """Merge tables with language columns (in any order) on their concept; translations are unioned."""
    merged: dict[str, dict[str, tuple[str, ...]]] = {}
    langs: tuple[str, ...] | None = None
    for path in files:
        header, rows = _read_rows(path)
        columns = _language_columns(path, header, languages)
        langs = langs or tuple(columns)
        if set(columns) != set(langs):
            raise DataError(f"This file holds {', '.join(columns)}, the first one {', '.join(langs)}.", path=path, line=1,
                            hint="Choose the languages to compare; every file must hold them.")
        for key, forms in _concepts(path, rows, columns, ORIGINAL in header):
            seen = merged.setdefault(key, {lang: () for lang in langs})
            for lang in langs:
                seen[lang] = tuple(dict.fromkeys((*seen[lang], *forms[lang])))
    if not merged or langs is None:
        raise DataError("The word list has no rows.", path=source, hint="Add one concept per row.")
    return _table(langs, list(merged.values()), [{} for _ in merged], source)


def read_word_table(path: str | Path, languages: tuple[str, ...] | list[str] | None = None) -> WordTable:
    """Read a word table from a folder (``<lang>/word_translation.csv`` or ``<lang>/clean.csv``) or one CSV file.

    ``languages`` keeps only those languages, or names the two columns of a
    ``word,translation`` CSV (source first).
    """
    path = Path(path).expanduser()
    languages = tuple(languages) if languages else None
    if path.is_dir():
        if tables := sorted(path.glob("*/word_translation.csv")):
            return _from_language_files(tables, languages, str(path))
        if files := sorted(path.glob("*/clean.csv")):
            return _from_clean_files(files, languages, str(path))
        raise DataError("No <lang>/word_translation.csv or <lang>/clean.csv files in this folder.", path=path,
                        hint="Point to the latent-language data folder, or to one CSV word list.")
    if not path.exists():
        raise DataError("No such word list.", path=path,
                        hint="Give a CSV file or a folder of <lang>/word_translation.csv or <lang>/clean.csv files.")
    header, rows = _read_rows(path)
    if all(c in header for c in CLEAN_COLUMNS):
        return _from_clean_files([path], languages, str(path))
    if header[:2] == ["word", "translation"]:
        if not languages or len(languages) != 2:
            raise ConfigError(f"{path} is a word,translation list: say which two languages it holds.",
                              hint="Pass languages=(source, target), e.g. ('fr', 'zh').")
        columns = dict(zip(languages, ("word", "translation"), strict=True))
        concepts = [forms for _, forms in _concepts(path, rows, columns, original=False)]
        if not concepts:
            raise DataError("The word list has no rows.", path=path, hint="Add one concept per row.")
        return _table(tuple(columns), concepts, [{} for _ in concepts], str(path))
    return _from_language_files([path], languages, str(path))


def packaged_words() -> WordTable:
    """The small English/French/German/Russian/Chinese list shipped with the workbench."""
    with resources.as_file(resources.files("workbench.lenses") / "data" / "words.csv") as path:
        return read_word_table(path)
