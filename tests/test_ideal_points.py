"""PAL-style ideal points of annotators (issue 25 §1): where each annotator's taste sits among a
model's features of the answers, and whether that grouping agrees with the factor tastes.

The grouping test gives the PAL fit features that carry the answers' length (and seeded noise
dimensions), so the length lovers and short lovers must land apart; the session test runs the
real path: a tiny checkpoint loaded by the ModelService, features through the activation cache.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from test_annotators import demo_pairs, voters
from typer.testing import CliRunner

from plugins.labeling.cli import label_app
from plugins.labeling.manage import annotators_markdown
from workbench.app.ui import md_escape
from workbench.data.types import Judgment, Outcome, Pair
from workbench.errors import WorkbenchError
from workbench.labeling import LabelingStore
from workbench.models.service import ModelService
from workbench.preference.annotators import annotator_analysis, annotator_rows, session_annotators
from workbench.settings import Settings
from workbench.store import Store

VOTES = 100


def length_features(texts: list[str]) -> np.ndarray:
    """Per text: its standardised log length and four dimensions of seeded noise (from its hash)."""
    out = []
    for t in texts:
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little"))
        out.append([np.log(len(t) + 1), *rng.normal(size=4)])
    x = np.asarray(out, dtype=np.float32)
    x[:, 0] = (x[:, 0] - x[:, 0].mean()) / (x[:, 0].std() + 1e-6)
    return x


def simulated_votes(seed: int) -> tuple[list[Pair], list[Judgment]]:
    rng = np.random.default_rng(seed)
    pairs = demo_pairs(rng)
    rules = {name: rule for name, rule in voters(rng).items() if name != "chosen"}
    votes = [Judgment(pairs[i].id, name, Outcome(rule(pairs[i]))) for name, rule in rules.items()
             for i in rng.permutation(len(pairs))[:VOTES]]
    return pairs, votes


def test_ideal_points_group_the_length_lovers_apart_from_the_short_lovers() -> None:
    pairs, votes = simulated_votes(7)
    analysis = annotator_analysis(pairs, votes, embed=length_features, resamples=4)
    rows = {r["annotator"]: r for r in analysis["annotators"]}
    points = {a: r["ideal_point"] for a, r in rows.items()}
    assert all(len(p["xy"]) == 2 and p["votes"] == VOTES for p in points.values())
    grouping = analysis["ideal_points"]["grouping"]
    assert grouping["agrees"] is True and grouping["adjusted_rand"] == 1.0
    assert sorted(map(sorted, grouping["clusters"].values())) == [["long1", "long2"], ["short1", "short2"]]
    assert points["long1"]["nearest"] == "long2" and points["short1"]["nearest"] == "short2"
    d = points["long1"]["distances"]
    assert d["long2"]["distance"] < min(d["short1"]["distance"], d["short2"]["distance"])
    for p in points.values():
        assert set(p["distances"]) == set(points) - {next(a for a, q in points.items() if q is p)}
        assert all(0 <= v["ci"][0] <= v["ci"][1] and v["resamples"] == 4 for v in p["distances"].values())
    assert "PAL-A" in analysis["ideal_points"]["model"] and "mean distance" in analysis["ideal_points"]["units"]
    shown = {r["annotator"]: r["ideal point: nearest"] for r in annotator_rows(analysis)}
    assert shown["long1"].startswith("long2 ") and "(4 resamples)" in shown["long1"]
    json.dumps(analysis)  # plain data, as `label annotators --json` prints it
    plain = annotator_analysis(pairs, votes)  # no model chosen: no ideal point
    assert "ideal_point" not in plain["annotators"][0] and "ideal point: nearest" not in annotator_rows(plain)[0]


def small_session(tmp_path: Path) -> LabelingStore:
    """24 pairs, three annotators: two who always take B (the longer answer), one coin."""
    rng = np.random.default_rng(1)
    pairs = [Pair(f"question {i}", "short answer", "a much longer answer " * (1 + i % 4), id=f"p{i}") for i in range(24)]
    store = Store(tmp_path / "workbench.sqlite")
    store.import_pairs("ds", pairs)
    lab = LabelingStore(store)
    lab.create_session("s", "ds", {"overlap": 3})
    for name in ("ann", "bea", "cyd"):
        lab.join("s", name)
        for p in pairs:
            lab.vote("s", name, p.id, "B" if name != "cyd" or rng.random() < 0.5 else "A",
                     displayed_order=lab.item("s", name, p.id).displayed_order)
    return lab


def test_a_session_gets_ideal_points_from_a_model_through_the_activation_cache(tmp_path: Path, tiny_checkpoint) -> None:
    lab = small_session(tmp_path)
    with pytest.raises(WorkbenchError, match="need a model service"):
        session_annotators(lab, "s", model=str(tiny_checkpoint("llama")))
    settings = Settings(home=tmp_path / "home")
    models = ModelService(settings)
    model = str(tiny_checkpoint("llama"))
    first = session_annotators(lab, "s", model=model, models=models, resamples=2)
    assert first["ideal_points"]["feature_model"] == model and first["ideal_points"]["fit"]["votes"] == 72
    assert all(set(r["ideal_point"]["distances"]) == {"ann", "bea", "cyd"} - {r["annotator"]} for r in first["annotators"])
    cached = [p for p in settings.cache_dir.iterdir() if p.is_dir()]
    assert cached, "the answers' features were not written to the activation cache"
    again = session_annotators(lab, "s", model=model, models=models, resamples=2)
    assert [p for p in settings.cache_dir.iterdir() if p.is_dir()] == cached  # read back, nothing extracted again
    assert [r["ideal_point"] for r in again["annotators"]] == [r["ideal_point"] for r in first["annotators"]]
    assert "ideal_point" not in session_annotators(lab, "s")["annotators"][0]  # no model: the factor analysis alone


def test_the_statistics_block_shows_the_ideal_points_of_a_picked_model(tmp_path: Path, tiny_checkpoint) -> None:
    lab = small_session(tmp_path)
    models = ModelService(Settings(home=tmp_path / "home"))
    model = str(tiny_checkpoint("llama"))
    text = annotators_markdown(lab, "s", None, model=model, models=models)
    header = next(line for line in text.splitlines() if line.startswith("| annotator |"))
    assert header.endswith("| ideal point: nearest |") and f"Ideal points (PAL-A on the features of {md_escape(model)}, 72 votes" in text
    assert "20 bootstrap refits" in text and "three grouped annotators" in text  # one taste group: nothing to compare
    broken = annotators_markdown(lab, "s", None, model="no-such-model", models=models)
    assert "⚠️ Ideal points on no-such-model:" in broken and "| ann |" in broken  # the factor analysis stays
    assert "ideal point: nearest" not in annotators_markdown(lab, "s", None)


def test_the_cli_places_annotators_at_ideal_points_with_model(tmp_path: Path, tiny_checkpoint) -> None:
    """``workbench label annotators S --model M``: the ideal points line and each row's point, in text and JSON."""
    small_session(tmp_path)  # its store is the home's workbench.sqlite
    model = str(tiny_checkpoint("llama"))
    args = ["annotators", "s", "--model", model, "--resamples", "2", "--home", str(tmp_path)]
    text = CliRunner().invoke(label_app, args)
    assert text.exit_code == 0, text.output
    assert f"ideal points ({model}):" in text.output and "ideal point: nearest" in text.output
    rows = json.loads(CliRunner().invoke(label_app, [*args, "--json"]).stdout)
    assert {r["annotator"] for r in rows} == {"ann", "bea", "cyd"} and all("ideal_point" in r for r in rows)
    missing = CliRunner().invoke(label_app, ["annotators", "s", "--model", "no-such-model", "--home", str(tmp_path)])
    assert missing.exit_code != 0
