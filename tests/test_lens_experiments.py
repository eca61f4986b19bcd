"""Latent-language experiments: word lists, prompts, overlap filtering, latent and preference lenses."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from workbench.data.types import Pair
from workbench.errors import ConfigError, DataError
from workbench.lenses import make_task, packaged_words, preference_lens, read_word_table, run_latent, word_token_set
from workbench.models.loading import load_model

CLEAN_HEADER = ["lang", "word_original", "word_translation", "blank_prompt_original", "blank_prompt_translation",
                "blank_prompt_translation_masked"]


def _write_clean(folder, lang, rows):
    (folder / lang).mkdir(parents=True, exist_ok=True)
    with (folder / lang / "clean.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(CLEAN_HEADER)
        for en, word, masked in rows:
            w.writerow([lang, en, word, "", "", masked])


@pytest.fixture
def clean_folder(tmp_path):
    _write_clean(tmp_path, "fr", [("cloud", "nuage", 'Un "___" flotte. Réponse : "nuage".'),
                                  ("bag", "sac", 'Un "___" porte. Réponse : "sac".'),
                                  ("book", "livre", 'Un "___" se lit. Réponse : "livre".'),
                                  ("piano", "piano", 'Un "___" joue. Réponse : "piano".')])
    _write_clean(tmp_path, "zh", [("cloud", "云", '"_"在天上。答案："云"。'), ("book", "书", '"_"用来读。答案："书"。'),
                                  ("piano", "钢琴", '"_"弹。答案："钢琴"。'), ("sun", "太阳", "")])
    return tmp_path


def test_clean_folder_joins_languages_on_english(clean_folder):
    table = read_word_table(clean_folder)
    assert table.languages == ("en", "fr", "zh")
    assert table.words == [{"en": "cloud", "fr": "nuage", "zh": "云"}, {"en": "book", "fr": "livre", "zh": "书"},
                           {"en": "piano", "fr": "piano", "zh": "钢琴"}]
    assert table.cloze[1]["zh"] == '"_"用来读。答案："书"。'
    only_fr = read_word_table(clean_folder, ["fr"])
    assert len(only_fr) == 4 and only_fr.languages == ("en", "fr")
    with pytest.raises(DataError, match="No words for language"):
        read_word_table(clean_folder, ["de"])


def test_plain_csv_layouts_and_errors(tmp_path):
    plain = tmp_path / "pairs.csv"
    plain.write_text("word,translation\nchien,dog\nchat,cat\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="which two languages"):
        read_word_table(plain)
    table = read_word_table(plain, ("fr", "en"))
    assert table.languages == ("fr", "en") and table.words[1] == {"fr": "chat", "en": "cat"}
    multi = tmp_path / "multi.csv"
    multi.write_text("en,de\ndog,Hund\ncat,\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_word_table(multi)
    assert (err.value.line, err.value.field) == (3, "de")
    bad = tmp_path / "bad.csv"
    bad.write_text("english words,x\na,b\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"Cannot use column\(s\) 'english words', 'x'"):
        read_word_table(bad)
    shipped = packaged_words()
    assert shipped.languages == ("en", "fr", "de", "ru", "zh") and len(shipped) >= 40


def test_task_prompts(clean_folder):
    table = read_word_table(clean_folder)
    task = make_task(table, "translation", "fr", "zh", shots=2, seed=3)
    assert len(task.examples) == 3 and task.title == "translation fr→zh"
    lines = task.examples[0].prompt.split("\n")
    assert len(lines) == 3 and lines[-1] == 'Français: "nuage" - 中文: "'
    assert all(line.startswith('Français: "') and line.endswith('"') for line in lines[:2])
    assert "nuage" not in "\n".join(lines[:2])  # the asked word is never a demonstration
    rep = make_task(table, "repetition", "fr", "fr", shots=1)
    assert rep.examples[1].prompt.split("\n")[-1] == 'Français: "livre" - Français: "'
    cloze = make_task(table, "cloze", "zh", "zh", shots=1)
    assert cloze.examples[0].prompt.endswith('"_"在天上。答案："')
    assert cloze.examples[0].prompt.split("\n")[0].startswith('"_"')
    with pytest.raises(DataError, match="too few"):
        make_task(table, "translation", "fr", "zh", shots=3)
    with pytest.raises(ConfigError, match="Unknown task kind"):
        make_task(table, "poetry", "fr", "zh")


def test_overlap_filter_drops_shared_tokens(tiny_checkpoint, clean_folder):
    lm = load_model(tiny_checkpoint("qwen2"))
    table = read_word_table(clean_folder)
    task = make_task(table, "translation", "zh", "fr", shots=1)
    result = run_latent(lm, task)
    assert "piano" not in [e.words["fr"] for e in result.examples]  # French piano == English piano
    tok = lm.tokenizer
    expected_overlap = sum(bool(set(word_token_set(tok, w["fr"])) & set(word_token_set(tok, w["en"]))) for w in table.words)
    assert result.n_overlap == expected_overlap >= 1
    assert result.languages == ("fr", "en", "zh") and result.role("zh") == "source copy"
    curves = result.curves()
    assert len(curves) == lm.n_layers + 1
    assert np.all(curves["p_fr_lo"] <= curves["p_fr"] + 1e-9) and np.all(curves["p_fr"] <= curves["p_fr_hi"] + 1e-9)
    frame = result.to_frame()
    assert len(frame) == len(result.examples) * (lm.n_layers + 1)
    # mass of the French set equals the probabilities of its tokens, recomputed by hand at the last layer
    ex = result.examples[0]
    ids = tok(ex.prompt)["input_ids"]
    with torch.inference_mode():
        p = torch.softmax(lm.model(torch.tensor([ids])).logits[0, -1], -1)
    hand = float(p[word_token_set(tok, ex.words["fr"])].sum())
    got = frame[(frame.example == 0) & (frame.layer == lm.n_layers)]["p_fr"].item()
    assert got == pytest.approx(hand, abs=1e-5)


@pytest.mark.demo_model
def test_demo_model_repeats_french_words_in_late_layers(demo_lm):
    task = make_task(packaged_words(), "repetition", "fr", "fr", shots=3, limit=8)
    result = run_latent(demo_lm, task)
    curves = result.curves()
    # a copy task the 135M model solves: the target language dominates at the top, not at the bottom
    assert curves["p_fr"].iloc[-1] > 0.5
    assert curves["p_fr"].iloc[1] < 0.1
    assert result.summary()["final_p_fr"] == pytest.approx(curves["p_fr"].iloc[-1])


def test_preference_lens_margin_matches_model_logprobs(tiny_checkpoint):
    lm = load_model(tiny_checkpoint("llama"))
    pairs = [
        Pair("Say something", "The quick brown fox.", "The lazy dog.", preferred="A"),
        Pair("Pick one", "Hallo Welt", "Bonjour le monde", preferred="B"),
        Pair("Tie", "x", "y", preferred="tie"),
        Pair("Unlabelled", "concise", "verbose"),
        Pair("Prefix", "same", "same thing", preferred="A"),
    ]
    result = preference_lens(lm, pairs)
    assert result.pair_ids == [pairs[0].id, pairs[1].id]
    assert result.skipped == {"tie": 1, "unlabeled": 1, "one response is a prefix of the other": 1}
    assert result.margins.shape == (2, lm.n_layers + 1)
    # the last lens point equals log p(chosen) − log p(rejected) from the model itself
    from workbench.models.generation import render_prompt

    tok = lm.tokenizer
    head = render_prompt(tok, "Pick one")
    chosen, rejected = (tok(head + t, add_special_tokens=False)["input_ids"] for t in ("Bonjour le monde", "Hallo Welt"))
    d = next(i for i in range(min(len(chosen), len(rejected))) if chosen[i] != rejected[i])
    with torch.inference_mode():
        logp = torch.log_softmax(lm.model(torch.tensor([chosen[:d]])).logits[0, -1], -1)
    assert result.margins[1, -1] == pytest.approx(float(logp[chosen[d]] - logp[rejected[d]]), abs=1e-4)
    assert result.chosen_tokens[1].strip().startswith("B") and result.rejected_tokens[1].strip().startswith("H")
    assert result.decision_layers().shape == (2,)
    assert set(result.curve().columns) >= {"margin", "margin_lo", "margin_hi", "agree_with_final"}
    with_a = preference_lens(lm, pairs, unlabeled="a")
    assert len(with_a.pair_ids) == 3
    with pytest.raises(DataError, match="None of the 1 pairs"):
        preference_lens(lm, pairs[2:3])


def test_decision_layer_is_start_of_final_sign_run():
    from workbench.lenses import PreferenceLensResult

    margins = np.array([[1.0, -1.0, 2.0, 3.0], [-1.0, -2.0, -3.0, -0.5], [1.0, 1.0, -1.0, 1.0]])
    r = PreferenceLensResult("m", ["a", "b", "c"], ["x"] * 3, ["y"] * 3, margins)
    assert r.decision_layers().tolist() == [2, 0, 3]


def test_small_n_cloze_and_preference(tiny_checkpoint, clean_folder):
    lm = load_model(tiny_checkpoint("qwen2"))
    table = read_word_table(clean_folder)
    one = run_latent(lm, make_task(table, "cloze", "zh", "zh", shots=0, limit=1))
    assert len(one.examples) == 1 and not one.has_control and not one.curves().isna().any().any()
    zh_only = read_word_table(clean_folder / "zh" / "clean.csv")  # 4 concepts, one without a cloze sentence
    with pytest.raises(DataError, match="Only 3 concepts have a zh cloze sentence .* 3-shot prompts need 4"):
        make_task(zh_only, "cloze", "zh", "zh", shots=3)
    single = preference_lens(lm, [Pair("Say something", "The quick brown fox.", "The lazy dog.", preferred="A")])
    curve = single.curve()
    assert len(single.pair_ids) == 1 and not curve.isna().any().any()
    assert (curve["margin_lo"] == curve["margin"]).all()  # one pair: no band, and no NaN
