"""Word tables for latent-language experiments: concepts × languages, read from CSV.

Three layouts are read into one ``WordTable``:
- a folder of ``<lang>/clean.csv`` files (the "Do Llamas Work in English?" data): joined on
  the English ``word_original``, with each language's masked cloze sentence;
- one such ``clean.csv`` (English plus that file's language);
- a plain CSV whose header names languages (``en,fr,de,ru,zh``), or ``word,translation``
  with the two languages given by the caller.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from workbench.errors import ConfigError, DataError

LANGUAGE_NAMES = {
    "en": "English", "fr": "Français", "de": "Deutsch", "ru": "Русский", "zh": "中文", "es": "Español",
    "it": "Italiano", "pt": "Português", "nl": "Nederlands", "ja": "日本語", "ko": "한국어", "pl": "Polski",
    "uk": "Українська", "ar": "العربية", "hi": "हिन्दी", "tr": "Türkçe", "sv": "Svenska", "fi": "Suomi",
}
CLEAN_COLUMNS = ("lang", "word_original", "word_translation")


def language_name(code: str) -> str:
    """The language's own name, as written in prompts (``Français: "nuage"``)."""
    return LANGUAGE_NAMES.get(code, code)


@dataclass
class WordTable:
    """One row per concept: ``words[i][lang]``; ``cloze[i][lang]`` a masked sentence where known."""

    languages: tuple[str, ...]
    words: list[dict[str, str]]
    cloze: list[dict[str, str]] = field(default_factory=list)
    source: str = ""

    def __len__(self) -> int:
        return len(self.words)


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            return [h.strip() for h in (reader.fieldnames or [])], rows
    except UnicodeDecodeError as exc:
        raise DataError(f"Not UTF-8 text ({exc.reason}).", path=path, hint="Save the word list as UTF-8 CSV.") from None
    except csv.Error as exc:
        raise DataError(f"Malformed CSV: {exc}.", path=path, hint="Check quoting in the word list.") from None


def _cell(path: Path, line: int, row: dict[str, str], column: str) -> str:
    value = (row.get(column) or "").strip()
    if not value:
        raise DataError("Empty word.", path=path, line=line, field=column, hint="Fill in the word or delete the row.")
    return value


def _read_clean(path: Path) -> tuple[str, dict[str, tuple[str, str]]]:
    """``lang`` and English word → (translation, masked cloze sentence) for one clean.csv."""
    header, rows = _read_rows(path)
    missing = [c for c in CLEAN_COLUMNS if c not in header]
    if missing:
        raise DataError(f"Missing column(s) {', '.join(missing)}.", path=path, line=1, field=missing[0],
                        hint=f"A clean.csv needs the columns {', '.join(CLEAN_COLUMNS)}.")
    langs = {r["lang"].strip() for r in rows if r.get("lang")}
    if len(langs) != 1:
        raise DataError(f"Expected one language per file, found {sorted(langs) or 'none'}.", path=path, field="lang",
                        hint="Split the file per language (<lang>/clean.csv).")
    out: dict[str, tuple[str, str]] = {}
    for line, row in enumerate(rows, start=2):
        en = _cell(path, line, row, "word_original")
        out.setdefault(en, (_cell(path, line, row, "word_translation"), (row.get("blank_prompt_translation_masked") or "").strip()))
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
    concepts = [en for en in per_lang[others[0]] if all(en in per_lang[lang] for lang in others)] if others else []
    words = [{"en": en, **{lang: per_lang[lang][en][0] for lang in others}} for en in concepts]
    cloze = [{lang: per_lang[lang][en][1] for lang in per_lang if lang in langs and en in per_lang[lang] and per_lang[lang][en][1]}
             for en in concepts]
    return WordTable(langs, words, cloze, source)


def read_word_table(path: str | Path, languages: tuple[str, ...] | list[str] | None = None) -> WordTable:
    """Read a word table from a folder of ``<lang>/clean.csv`` or from one CSV file.

    ``languages`` keeps only those languages (folders), or names the two columns of a
    ``word,translation`` CSV (source first).
    """
    path = Path(path).expanduser()
    languages = tuple(languages) if languages else None
    if path.is_dir():
        files = sorted(path.glob("*/clean.csv"))
        if not files:
            raise DataError("No <lang>/clean.csv files in this folder.", path=path,
                            hint="Point to the latent-language data folder, or to one CSV word list.")
        return _from_clean_files(files, languages, str(path))
    if not path.is_file():
        raise DataError("No such word list.", path=path, hint="Give a CSV file or a folder of <lang>/clean.csv files.")
    header, rows = _read_rows(path)
    if all(c in header for c in CLEAN_COLUMNS):
        return _from_clean_files([path], languages, str(path))
    if header[:2] == ["word", "translation"]:
        if not languages or len(languages) != 2:
            raise ConfigError(f"{path} is a word,translation list: say which two languages it holds.",
                              hint="Pass languages=(source, target), e.g. ('fr', 'zh').")
        columns = dict(zip(languages, ("word", "translation"), strict=True))
    else:
        if not header or any(not (h.isalpha() and 2 <= len(h) <= 3) for h in header):
            raise DataError(f"Header {header} names no languages.", path=path, line=1,
                            hint="Use language codes as column names (en,fr,zh), word,translation, or the clean.csv layout.")
        keep = languages or tuple(header)
        missing = [lang for lang in keep if lang not in header]
        if missing:
            raise DataError(f"No column for language(s) {', '.join(missing)}.", path=path, line=1, field=missing[0],
                            hint=f"The file holds {', '.join(header)}.")
        columns = {lang: lang for lang in keep}
    words = [{lang: _cell(path, line, row, col) for lang, col in columns.items()} for line, row in enumerate(rows, start=2)]
    if not words:
        raise DataError("The word list has no rows.", path=path, hint="Add one concept per row.")
    return WordTable(tuple(columns), words, [{} for _ in words], str(path))


def packaged_words() -> WordTable:
    """The small English/French/German/Russian/Chinese list shipped with the workbench."""
    with resources.as_file(resources.files("workbench.lenses") / "data" / "words.csv") as path:
        return read_word_table(path)
