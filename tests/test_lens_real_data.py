"""Latent language on real data: the authors' word_translation.csv tables, token sets that mean
the word in every script, the control (mass on other concepts' sets), and small-N edge cases."""
from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from plugins.logit_lens.figures import latent_figure
from workbench.errors import ConfigError, DataError
from workbench.lenses import (
    LatentResult,
    LensMetrics,
    carried_by,
    concept_token_set,
    lens_metrics,
    make_task,
    read_word_table,
    run_latent,
    word_token_set,
)
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
    assert result.has_control and result.shared == {"hi": 0, "en": 0, "zh": 0} and not result.warnings
    summary = result.summary()
    assert 0 <= summary["final_control_hi"] <= 1 and summary["peak_control_en"] is not None


# --- issue 20, part 4: the source word watched, medians and shares, results carried by few examples ---

COPIES = [  # (en, fr, zh): forêt and fleur start with the tokens of forest and flower, soleil (any case) with sun
    ("forest", "forêt", "森林"), ("flower", "fleur", "花"), ("sun", "Soleil", "太阳"), ("moon", "lune", "月亮"),
    ("cloud", "nuage", "云"), ("book", "livre", "书"), ("tree", "arbre", "树"),
]


def _copies_table() -> WordTable:
    return WordTable(("en", "fr", "zh"), [{"en": e, "fr": f, "zh": z} for e, f, z in COPIES])


def test_source_word_is_watched_and_its_overlaps_are_dropped_and_counted(tiny_qwen):
    tok = tiny_qwen.tokenizer
    task = make_task(_copies_table(), "translation", "fr", "zh", shots=1)
    result = run_latent(tiny_qwen, task)
    assert result.languages == ("zh", "en", "fr")
    assert [result.role(lang) for lang in result.languages] == ["target", "latent", "source copy"]
    # which examples the source word ties to the latent or target words, from the token sets themselves
    sets = {lang: [set(word_token_set(tok, e.words[lang])) for e in task.examples] for lang in ("en", "zh")}
    copies = [set(word_token_set(tok, e.words["fr"])) | set(word_token_set(tok, e.words["fr"].lower())) for e in task.examples]
    via_source = [i for i in range(len(COPIES)) if copies[i] & (sets["en"][i] | sets["zh"][i])]
    assert [COPIES[i][1] for i in via_source] == ["forêt", "fleur", "Soleil"]  # Soleil copied as soleil starts like sun
    assert result.n_source_overlap == len(via_source) and result.n_overlap >= len(via_source)
    assert {"forêt", "fleur", "Soleil"}.isdisjoint(e.words["fr"] for e in result.examples)
    summary = result.summary()
    assert summary["n_source_overlap"] == 3 and summary["source"] == "fr"
    assert {"peak_p_fr", "peak_layer_fr", "peak_median_fr", "peak_beats_control_fr"} <= set(summary)
    # the source-copy curve is the lens mass on the source word's own tokens (hand-computed at the output)
    curves = result.curves()
    assert {"p_fr", "p_fr_median", "p_fr_control", "p_fr_beats_control", "p_fr_carried_by"} <= set(curves.columns)
    ex = result.examples[0]
    with torch.inference_mode():
        p = torch.softmax(tiny_qwen.model(torch.tensor([tok(ex.prompt)["input_ids"]])).logits[0, -1], -1)
    frame = result.to_frame()
    got = frame[(frame.example == 0) & (frame.layer == tiny_qwen.n_layers)]["p_fr"].item()
    copy_ids = sorted({*word_token_set(tok, ex.words["fr"]), *word_token_set(tok, ex.words["fr"].capitalize())})  # lune, Lune
    assert got == pytest.approx(float(p[copy_ids].sum()), abs=1e-5)
    # not watching the source keeps the copies (the old behaviour, asked for explicitly)
    blind = run_latent(tiny_qwen, task, watch_source=False)
    assert blind.languages == ("zh", "en") and blind.n_source_overlap == 0 and len(blind.examples) == len(COPIES) - blind.n_overlap
    assert len(blind.examples) > len(result.examples)
    # an English source is the latent language too: one curve, both roles, said in the warnings
    english = run_latent(tiny_qwen, make_task(_copies_table(), "translation", "en", "zh", shots=1))
    assert english.languages == ("zh", "en") and english.role("en") == "latent + source copy"
    assert any("also a latent language" in w for w in english.warnings)


def test_every_curve_has_its_median_and_share_beating_control(tiny_qwen):
    result = run_latent(tiny_qwen, make_task(_copies_table(), "translation", "fr", "zh", shots=1))
    curves, frame = result.curves(), result.to_frame()
    for lang in result.languages:
        per_layer = frame.groupby("layer")
        np.testing.assert_allclose(curves[f"p_{lang}_median"], per_layer[f"p_{lang}"].median(), atol=1e-7)
        beats = (frame[f"p_{lang}"] > frame[f"p_{lang}_control"]).groupby(frame.layer).mean()
        np.testing.assert_allclose(curves[f"p_{lang}_beats_control"], beats)
    assert {"entropy_bits_median", "p_zh_control_median"} <= set(curves.columns)
    summary = result.summary()
    assert summary["final_median_zh"] == pytest.approx(curves["p_zh_median"].iloc[-1])
    assert summary["final_beats_control_zh"] == pytest.approx(curves["p_zh_beats_control"].iloc[-1])


def test_carried_by_counts_the_examples_holding_most_of_the_excess():
    control = np.full((40, 2), 0.001)
    few = np.full((40, 2), 0.002)
    few[:3, 1] = 0.4  # three copies hold the mean at layer 1; the other 37 beat the control by a hair
    np.testing.assert_array_equal(carried_by(few, control), [32, 3])  # 80% of 40 equal excesses: 32 examples
    np.testing.assert_array_equal(carried_by(control * 0.5, control), [0, 0])  # nobody beats the control


def _synthetic_result(carriers: int, n: int = 20) -> LatentResult:
    """A result whose P(en) excess at layer 2 sits on ``carriers`` examples; P(zh) beats its control everywhere."""
    table = WordTable(("en", "zh"), [{"en": f"w{i}", "zh": f"字{i}"} for i in range(n)])
    task = make_task(table, "repetition", "zh", "zh", shots=0)
    shape = (n, 4, 1)
    en, zh = np.full(shape, 0.001, np.float32), np.full(shape, 0.01, np.float32)
    en[:carriers, 2] = 0.5
    zh[:, 3] = 0.3
    metrics = LensMetrics((-1,), np.ones(shape, np.float32), np.zeros(shape, np.float32), np.zeros(shape, np.int64),
                          mass={"zh": zh, "en": en},
                          control={"zh": np.full(shape, 0.1, np.float32), "en": np.full(shape, 0.002, np.float32)})
    return LatentResult("synthetic", task, ("zh", "en"), task.examples, metrics, 0)


def test_result_carried_by_few_examples_is_flagged_in_summary_warnings_and_figure():
    flagged = _synthetic_result(carriers=2)  # 2 of 20 = 10%
    summary = flagged.summary()
    assert summary["peak_layer_en"] == 2 and summary["peak_carried_by_en"] == 2
    assert summary["peak_median_en"] == pytest.approx(0.001) and summary["peak_beats_control_en"] == pytest.approx(0.1)
    assert "P(en) latent at layer 2" in summary["carried_by_few"] and "2 of 20 examples" in summary["carried_by_few"]
    assert "P(zh)" not in summary["carried_by_few"]  # every example carries the target
    assert any("carried by 2 of 20" in w for w in flagged.warnings)
    texts = [t.get_text() for ax in latent_figure([flagged]).axes for t in ax.texts]
    assert any("carried by ≤ 10%" in t and "P(en) at layer 2: 2 of 20" in t for t in texts)
    spread = _synthetic_result(carriers=6)  # 30%: a result, not flagged
    assert spread.summary()["carried_by_few"] == "" and not any("carried by" in w for w in spread.warnings)
    texts = [t.get_text() for ax in latent_figure([spread]).axes for t in ax.texts]
    assert not any("carried by" in t for t in texts)


def test_evidence_script_reads_the_authors_tables_for_a_non_english_target(tiny_checkpoint, tmp_path):
    """``--data <authors' tables> --pairs fr-ja`` crashed with 'The word list has no en words'."""
    rows = [["word_original", "fr", "ja"], ["cloud", "['nuage']", "['雲']"], ["book", "['livre']", "['本']"],
            ["sun", "['soleil']", "['太陽']"], ["water", "['eau']", "['水']"], ["moon", "['lune']", "['月']"]]
    _write(tmp_path / "data" / "fr" / "word_translation.csv", rows)
    _write(tmp_path / "data" / "ja" / "word_translation.csv", rows)
    script = Path(__file__).resolve().parents[1] / "scripts" / "latent_language_evidence.py"
    out = subprocess.run([sys.executable, str(script), "--data", str(tmp_path / "data"), "--pairs", "fr-ja,ja-fr,en-ja",
                          "--model", str(tiny_checkpoint("qwen2")), "--shots", "1", "--out", str(tmp_path / "img")],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "WORKBENCH_HOME": str(tmp_path / "home")})
    assert out.returncode == 0, out.stderr[-2000:]
    for title in ("translation fr→ja", "translation ja→fr", "translation en→ja"):
        assert f"## {title}" in out.stdout
    assert "P(fr) source copy" in out.stdout and "P(en) latent + source copy" in out.stdout
    assert sorted(p.name for p in (tmp_path / "img").iterdir()) == [
        "latent_language_en_ja.png", "latent_language_fr_ja.png", "latent_language_ja_fr.png"]
    # the paper's clean.csv layout, no en/ folder: English comes from word_original for any pair
    spec = importlib.util.spec_from_file_location("latent_language_evidence", script)
    evidence = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(evidence)
    for lang, words in (("de", ["Wolke", "Buch", "Sonne"]), ("ru", ["облако", "книга", "солнце"])):
        _write(tmp_path / "clean" / lang / "clean.csv", [["lang", "word_original", "word_translation"]]
               + [[lang, en, w] for en, w in zip(["cloud", "book", "sun"], words, strict=True)])
    task = evidence.load_task(tmp_path / "clean", "de", "ru", shots=1)
    assert [e.words for e in task.examples][1] == {"en": "book", "de": "Buch", "ru": "книга"}
