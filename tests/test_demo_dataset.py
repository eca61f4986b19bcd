"""The shipped demo dataset: shape, coverage, and that its attributes really differ.

These tests read the packaged file; they never regenerate it (that takes minutes).
"""
from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from workbench.data.demo import demo_dataset_path, load_demo_pairs
from workbench.data.types import Pair
from workbench.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
POLES = {
    "verbosity": {"concise", "verbose"},
    "formality": {"formal", "casual"},
    "confidence": {"direct", "hedged"},
    "example": {"with_example", "without_example"},
}


def _script():
    """The generator script, imported as a module (its measuring code is what we check)."""
    spec = importlib.util.spec_from_file_location("make_demo_dataset", ROOT / "scripts" / "make_demo_dataset.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pairs() -> list[Pair]:
    return load_demo_pairs()


def _side(pair: Pair, pole: str) -> str:
    return pair.response_a if pair.metadata["a_pole"] == pole else pair.response_b


def test_file_ships_inside_the_package_and_is_small():
    path = demo_dataset_path()
    assert path.is_file()
    assert path.parent == ROOT / "workbench" / "data" / "demo"
    assert path.stat().st_size < 1.5e6


def test_enough_pairs_prompts_and_topics(pairs):
    assert len(pairs) >= 150
    assert all(isinstance(p, Pair) for p in pairs)
    assert len({p.prompt for p in pairs}) >= 50
    topics = Counter(p.metadata["topic"] for p in pairs)
    assert len(topics) >= 6
    assert min(topics.values()) >= 10


def test_ids_unique_and_pairs_unlabeled(pairs):
    ids = [p.id for p in pairs]
    assert len(set(ids)) == len(ids)
    assert all(p.preferred is None for p in pairs)


def test_responses_non_empty_and_different(pairs):
    for p in pairs:
        assert isinstance(p.prompt, str) and p.prompt.strip()
        assert p.response_a.strip() and p.response_b.strip()
        assert p.response_a.split() != p.response_b.split(), p.id


def test_every_attribute_with_both_poles_on_both_sides(pairs):
    by_attr: dict[str, list[Pair]] = {}
    for p in pairs:
        by_attr.setdefault(p.metadata["attribute"], []).append(p)
    assert set(by_attr) == set(POLES)
    for attr, rows in by_attr.items():
        assert len(rows) >= 30, attr
        for p in rows:
            assert {p.metadata["a_pole"], p.metadata["b_pole"]} == POLES[attr], p.id
        a_poles = Counter(p.metadata["a_pole"] for p in rows)
        # Randomized per pair: each pole is A in a fair share of pairs, never always the same one.
        assert set(a_poles) == POLES[attr]
        assert min(a_poles.values()) >= 0.25 * len(rows), (attr, a_poles)


def test_metadata_records_how_each_side_was_made(pairs):
    for p in pairs:
        m = p.metadata
        assert "SmolLM2-135M-Instruct" in m["source_model"]
        assert m["a_system"] != m["b_system"]
        for side in ("a", "b"):
            assert m[f"{side}_system"].strip()
            assert p.prompt in m[f"{side}_user_turn"]
            decoding = m[f"{side}_decoding"]
            assert isinstance(decoding["seed"], int) and decoding["max_new_tokens"] >= 32
            assert 0 < decoding["temperature"] and 0 < decoding["top_p"] <= 1


def test_stored_features_match_the_text(pairs):
    """The features are measurements of the shipped text, not numbers carried from elsewhere."""
    measure = _script().measure
    for p in pairs:
        for side, text in (("a", p.response_a), ("b", p.response_b)):
            stored = dict(p.metadata[f"{side}_features"])
            stored.pop("tokens")
            assert stored == measure(text), (p.id, side)


def test_measure_counts_what_it_says():
    f = _script().measure("Hey, it's pretty much done! It might rain. For example, you'll see.")
    assert f["words"] == 12
    assert f["sentences"] == 3
    assert f["contractions"] == 2  # it's, you'll
    assert f["exclamations"] == 1
    assert f["hedges"] == 1  # might
    assert f["example_markers"] == 1
    formal = _script().measure("Therefore, one should ensure that the solution is correct.")
    assert formal["contractions"] == 0 and formal["formal_words"] == 3 and formal["casual_markers_per_100_words"] == 0


def test_verbose_side_is_longer_in_a_clear_majority(pairs):
    rows = [p for p in pairs if p.metadata["attribute"] == "verbosity"]
    # Counted straight from the text, independent of the stored features.
    longer = sum(len(_side(p, "verbose").split()) > len(_side(p, "concise").split()) for p in rows)
    assert longer / len(rows) >= 0.8, f"verbose side longer in only {longer}/{len(rows)} pairs"


def test_other_attributes_lean_toward_their_pole(pairs):
    """Formality separates in most pairs; the 135M model follows the hedging and example
    instructions only sometimes (most pairs tie at zero markers), so for those the high
    pole must win more of the pairs that differ than it loses (see demo/README.md)."""
    contraction = re.compile(r"\w(?:n't|'re|'ve|'ll|'m)\b|\b(?:it|that|there|here|what|let)'s\b", re.IGNORECASE)
    hedge = re.compile(r"\b(?:might|may|could|perhaps|possibly|probably|maybe|likely|depends?|vary|varies)\b", re.IGNORECASE)
    checks = {
        "formality": ("casual", "formal", lambda t: len(contraction.findall(t.replace("’", "'"))) + t.count("!")),
        "confidence": ("hedged", "direct", lambda t: len(hedge.findall(t))),
        "example": ("with_example", "without_example", lambda t: len(re.findall(r"for (?:example|instance)", t, re.IGNORECASE))),
    }
    for attr, (high, low, score) in checks.items():
        rows = [p for p in pairs if p.metadata["attribute"] == attr]
        higher = sum(score(_side(p, high)) > score(_side(p, low)) for p in rows)
        lower = sum(score(_side(p, high)) < score(_side(p, low)) for p in rows)
        if attr == "formality":
            assert higher / len(rows) > 0.5, f"{attr}: {high} side scores higher in only {higher}/{len(rows)} pairs"
        assert higher > 1.5 * lower, f"{attr}: {high} side wins {higher} pairs but loses {lower}"


def test_broken_file_names_the_line(tmp_path):
    good = demo_dataset_path().read_text(encoding="utf-8").splitlines()[0]
    path = tmp_path / "pairs.jsonl"
    path.write_text(good + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_demo_pairs(path)
    assert err.value.line == 2 and str(path) in str(err.value)

    record = json.loads(good)
    del record["response_b"]
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_demo_pairs(path)
    assert err.value.field == "response_b" and err.value.line == 1


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="regenerate"):
        load_demo_pairs(tmp_path / "absent.jsonl")
