"""Latent language on real data: the authors' word_translation.csv tables, token sets that mean
the word in every script, the control (mass on other concepts' sets), and small-N edge cases."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from workbench.errors import ConfigError, DataError
from workbench.lenses import concept_token_set, lens_metrics, make_task, read_word_table, run_latent, word_token_set
from workbench.lenses.token_sets import display_token
from workbench.lenses.wordlists import WordTable
from workbench.models.loading import load_model

# the authors' layout: a column per language plus word_original, each cell a Python-list string,
# column order differing between files, some cells padded with spaces
ES_FILE = [
    ["fr", "en", "es", "zh", "word_original"],
    ["['nuage']", "['cloud', 'clouds']", " ['nube', 'nubes'] ", "['云']", "cloud"],
    ["['livre']", "['book']", "['libro']", "['书', '书本']", "book"],
]
HI_FILE = [
    [" word_original", "zh ", "es", "en", "fr"],
    ["cloud", "['云彩']", "['nube']", "['cloud']", "['nuée', 'nuage']"],
    ["sun", "['太阳']", "['sol']", "['sun']", "['soleil']"],
]


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    return path


@pytest.fixture
def authors_folder(tmp_path):
    _write(tmp_path / "es" / "word_translation.csv", ES_FILE)
    _write(tmp_path / "hi" / "word_translation.csv", HI_FILE)
    return tmp_path


@pytest.fixture(scope="module")
def tiny_qwen(tiny_checkpoint):
    return load_model(tiny_checkpoint("qwen2"))


def test_authors_folder_merges_concepts_and_keeps_every_translation(authors_folder):
    table = read_word_table(authors_folder)
    assert table.languages == ("fr", "en", "es", "zh")
    by_en = {w["en"]: i for i, w in enumerate(table.words)}
    assert set(by_en) == {"cloud", "book", "sun"}
    cloud = table.forms[by_en["cloud"]]
    # the union over both files, in first-seen order; word_original is the first English form
    assert cloud == {"fr": ("nuage", "nuée"), "en": ("cloud", "clouds"), "es": ("nube", "nubes"), "zh": ("云", "云彩")}
    assert table.words[by_en["cloud"]] == {"fr": "nuage", "en": "cloud", "es": "nube", "zh": "云"}
    only = read_word_table(authors_folder / "hi" / "word_translation.csv", ("es", "zh"))
    assert only.languages == ("es", "zh") and only.forms[0] == {"es": ("nube",), "zh": ("云彩",)}
    task = make_task(table, "translation", "es", "zh", shots=1)
    assert task.examples[0].forms == table.forms[0]


def test_authors_table_errors_name_the_column(tmp_path):
    notes = _write(tmp_path / "notes.csv", [["fr", "de", "en", "word_original", "notes"], ["['a']", "['b']", "['c']", "c", "x"]])
    with pytest.raises(DataError) as err:
        read_word_table(notes)
    assert err.value.field == "notes" and "'notes'" in err.value.message and "fr, de, en" in err.value.message
    broken = _write(tmp_path / "broken.csv", [["en", "es"], ["['dog']", "['perro',"]])
    with pytest.raises(DataError) as err:
        read_word_table(broken)
    assert (err.value.line, err.value.field) == (2, "es")
    code = _write(tmp_path / "code.csv", [["en", "es"], ["['dog']", "[__import__('os').getcwd()]"]])
    with pytest.raises(DataError, match="list of words"):  # literals only: nothing is evaluated
        read_word_table(code)
    empty = _write(tmp_path / "empty.csv", [["en", "es"], ["['dog']", "[]"]])
    with pytest.raises(DataError, match="Empty word"):
        read_word_table(empty)
    _write(tmp_path / "a" / "word_translation.csv", [["en", "es"], ["['dog']", "['perro']"]])
    _write(tmp_path / "b" / "word_translation.csv", [["en", "fr"], ["['dog']", "['chien']"]])
    with pytest.raises(DataError, match="every file must hold them"):
        read_word_table(tmp_path)
    assert read_word_table(tmp_path, ["en"]).forms == [{"en": ("dog",)}]


def test_token_set_is_the_union_over_translations(tiny_qwen):
    tok = tiny_qwen.tokenizer
    union = concept_token_set(tok, ["nube", "nubes", "cloud"])
    assert set(union.ids) == set(word_token_set(tok, "nube")) | set(word_token_set(tok, "cloud"))
    with pytest.raises(DataError, match="empty word"):
        concept_token_set(tok, [" ", ""])


HINDI_SAME_LEAD = ["बादल", "पानी", "घर", "पेड़"]  # no whole-character token in the tiny vocabulary: byte fragments


def _table(words: list[str], lang: str = "hi") -> WordTable:
    english = ["cloud", "water", "house", "tree", "river", "night"]
    return WordTable(("en", lang), [{"en": e, lang: w} for e, w in zip(english, words, strict=False)])


def test_control_is_mean_mass_on_other_concepts_and_identical_sets_warn(tiny_qwen):
    task = make_task(_table(HINDI_SAME_LEAD), "translation", "en", "hi", shots=1)
    result = run_latent(tiny_qwen, task)
    assert len(result.examples) == 4 and result.has_control
    assert result.fragments["hi"] == HINDI_SAME_LEAD  # flagged: only byte fragments count
    assert result.shared["hi"] == 4
    assert any("4 of 4 hi concepts have a token set identical" in w for w in result.warnings)
    assert any("no whole-character token" in w for w in result.warnings)
    # the control for prompt i is the mean, over j != i, of the mass on concept j's set (recomputed by hand)
    sets = [sorted(set(word_token_set(tiny_qwen.tokenizer, e.words["hi"]))) for e in result.examples]
    prompts = [e.prompt for e in result.examples]
    every = lens_metrics(tiny_qwen, prompts, token_sets={f"s{j}": [sets[j]] * 4 for j in range(4)})
    for i in range(4):
        hand = np.mean([every.mass[f"s{j}"][i] for j in range(4) if j != i], axis=0)
        np.testing.assert_allclose(result.metrics.control["hi"][i], hand, atol=1e-6)
    curves = result.curves()
    assert {"p_hi_control", "p_hi_control_lo", "p_en_control"} <= set(curves.columns)
    summary = result.summary()
    assert summary["final_control_hi"] == pytest.approx(curves["p_hi_control"].iloc[-1])
    assert summary["peak_control_en"] is not None and summary["shared_sets"] >= 4
    assert "p_hi_control" in result.to_frame().columns


def test_small_n_edge_cases(tiny_qwen):
    table = _table(["नदी", "रात", "मछली", "सूरज", "किताब", "तारा"])
    one = run_latent(tiny_qwen, make_task(table, "translation", "en", "hi", shots=2, limit=1))
    assert len(one.examples) == 1 and not one.has_control
    assert one.summary()["final_control_hi"] is None and "Only 1 example" in one.warnings[0]
    assert one.curves()["p_hi_lo"].equals(one.curves()["p_hi"])  # no band from one example, and no NaN
    two = run_latent(tiny_qwen, make_task(table, "translation", "en", "hi", shots=2, limit=2))
    # with two examples the control of each is exactly the mass on the other's set
    sets = [word_token_set(tiny_qwen.tokenizer, e.words["hi"]) for e in two.examples]
    swapped = lens_metrics(tiny_qwen, [e.prompt for e in two.examples], token_sets={"x": sets[::-1]})
    np.testing.assert_allclose(two.metrics.control["hi"], swapped.mass["x"], atol=1e-6)
    zero = make_task(table, "repetition", "hi", "hi", shots=0, limit=3)
    assert [e.prompt.count("\n") for e in zero.examples] == [0, 0, 0]
    assert len(run_latent(tiny_qwen, zero).examples) == 3
    with pytest.raises(DataError, match="6 concepts are too few for 6-shot prompts") as err:
        make_task(table, "translation", "en", "hi", shots=6)
    assert "at most 5 shots" in err.value.hint
    assert len(make_task(table, "translation", "en", "hi", shots=5, limit=50).examples) == 6  # limit above what exists
    with pytest.raises(ConfigError, match="at least two prompts"):
        lens_metrics(tiny_qwen, ["a b"], token_sets={"x": [[1]]}, controls=True)


@pytest.mark.demo_model
def test_demo_tokenizer_sets_differ_in_every_script_and_control_is_reported(demo_lm):
    tok = demo_lm.tokenizer
    fixture = {  # words whose first character the SmolLM2 vocabulary holds as a whole token
        "hi": ["व्यक्ति", "नाम", "महान", "तरीका", "संतान"],
        "ja": ["人", "名前", "大きい", "方法", "子供"],
        "zh": ["人", "名字", "大", "方法", "子女"],
    }
    for lang, words in fixture.items():
        sets = [concept_token_set(tok, [w]) for w in words]
        assert len({s.ids for s in sets}) == len(words), lang  # every concept's set differs from the others'
        for word, ts in zip(words, sets, strict=True):
            assert not ts.fragments
            shown = [display_token(tok, i).strip() for i in ts.ids]
            assert all(s and word.startswith(s) for s in shown), (word, shown)  # whole characters, no byte fragments
    fragment = concept_token_set(tok, ["बादल"])  # no whole-character token for ब: fragments, flagged
    assert fragment.fragments == ("बादल",)
    table = WordTable(("en", "hi", "zh"), [{"en": e, "hi": h, "zh": z} for e, h, z in
                                           zip(["person", "name", "great", "method", "offspring"], fixture["hi"], fixture["zh"], strict=True)])
    result = run_latent(demo_lm, make_task(table, "translation", "zh", "hi", shots=2))
    assert result.has_control and result.shared == {"hi": 0, "en": 0} and not result.warnings
    summary = result.summary()
    assert 0 <= summary["final_control_hi"] <= 1 and summary["peak_control_en"] is not None
