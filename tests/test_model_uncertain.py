"""The model-uncertain order (issue 25 §2): a reward head refitted from a session's votes in the
background serves the pair it is least sure about, or the one taste groups disagree on most.
Real SQLite store, simulated annotators; features are planted (a tiny feature model) or read
from a tiny random checkpoint through the activation cache."""
from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from workbench.data.types import Pair
from workbench.labeling import LabelingStore
from workbench.labeling.sessions import ORDERS, Invalid
from workbench.labeling.uncertain import (
    MODEL_UNCERTAIN,
    LaplaceHead,
    batch_order,
    disagreement,
    expected_reduction,
    fit_head,
    prior_precision,
    project,
)
from workbench.store import Store

D = 6


def planted_pairs(n: int, seed: int = 0) -> tuple[list[Pair], np.ndarray, np.ndarray]:
    """Pairs whose responses carry planted feature vectors (kept beside them, by pair index)."""
    rng = np.random.default_rng(seed)
    fa, fb = rng.normal(size=(n, D)), rng.normal(size=(n, D))
    words = ["fox", "dog", "answer", "brown", "lazy", "quick"]
    pairs = [Pair(f"question {i}?", " ".join(words[: 1 + i % 6]), " ".join(words[: 1 + (i * 5) % 6]) + " ok", id=f"p{i:03d}")
             for i in range(n)]
    return pairs, fa, fb


class Planted:
    """A tiny feature model: the planted vectors of each pair; ``gate`` (an Event) holds every call until set."""

    def __init__(self, pairs: Sequence[Pair], fa: np.ndarray, fb: np.ndarray, gate: threading.Event | None = None) -> None:
        self.row = {p.id: i for i, p in enumerate(pairs)}
        self.fa, self.fb, self.gate = fa, fb, gate
        self.entered = threading.Event()
        self.calls: list[tuple[str, int]] = []

    def __call__(self, model: str, layer: int, pairs: Sequence[Pair]) -> tuple[np.ndarray, np.ndarray, str]:
        self.calls.append((model, layer))
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(30)
        idx = [self.row[p.id] for p in pairs]
        return self.fa[idx], self.fb[idx], "planted features"


def make_lab(tmp_path: Path, pairs: list[Pair], features) -> LabelingStore:
    store = Store(tmp_path / "wb.sqlite")
    store.import_pairs("ds", pairs)
    return LabelingStore(store, features=features)


def hidden_vote(w: np.ndarray, fa: np.ndarray, fb: np.ndarray, row: int) -> str:
    return "A" if (fa[row] - fb[row]) @ w > 0 else "B"


def test_settings_name_the_order_and_need_a_model(tmp_path: Path) -> None:
    assert MODEL_UNCERTAIN in ORDERS
    pairs, fa, fb = planted_pairs(10)
    lab = make_lab(tmp_path, pairs, Planted(pairs, fa, fb))
    with pytest.raises(Invalid, match="needs a model"):
        lab.create_session("s", "ds", {"order": MODEL_UNCERTAIN})
    for bad in (0, -3, 2.5, True):
        with pytest.raises(Invalid, match="refit_every must be a whole number"):
            lab.create_session("s", "ds", {"order": MODEL_UNCERTAIN, "policy_model": "m", "refit_every": bad})
    with pytest.raises(Invalid, match="uncertainty_layer"):
        lab.create_session("s", "ds", {"order": MODEL_UNCERTAIN, "uncertainty_model": "m", "uncertainty_layer": -1})
    info = lab.create_session("s", "ds", {"order": MODEL_UNCERTAIN, "uncertainty_model": "m", "uncertainty_layer": 2})
    assert info.settings.refit_every == 8 and lab.selection_status("s")["head_version"] is None
    assert lab.create_session("plain", "ds").settings.order == "sequential" and lab.selection_status("plain") is None


def test_head_maths_on_planted_data() -> None:
    rng = np.random.default_rng(1)
    w_true = rng.normal(size=D)
    x = rng.normal(size=(400, D))
    head = fit_head(x, x @ w_true + rng.logistic(size=400) * 0.3 > 0, l2=1.0)
    assert np.corrcoef(head.w, w_true)[0, 1] > 0.95
    mu, var = head.predict(x)
    assert np.all(var > 0)
    assert disagreement([np.array([0.9, 0.5]), np.array([0.1, 0.5])])[0] > 0.5 > disagreement([np.array([0.9]), np.array([0.9])])[0]
    delta = project(rng.normal(size=(50, 40)), rng.normal(size=(50, 40)), components=8)
    assert delta.shape == (50, 8)


def test_a_refits_batch_spreads_over_directions_the_head_is_unsure_of() -> None:
    """Ten copies of one direction outscore five of another (a vote along it lowers more of the
    open pairs' uncertainty); the batch order asks one of the first, then, that one taken in,
    one of the second (ranking once would ask all ten)."""
    delta = np.vstack([np.tile([3.0, 0.0], (10, 1)), np.tile([0.0, 2.5], (5, 1))])
    head = LaplaceHead(np.zeros(2), np.eye(2), 0)
    reduction = expected_reduction(delta, head.cov, np.full(15, 0.25), delta.T @ delta)
    assert set(np.argsort(-reduction, kind="stable")[:10]) == set(range(10))
    order = batch_order(delta, head, np.zeros(15), batch=4)
    assert order[0] < 10 and order[1] >= 10 and sorted(order) == list(range(15))
    done = np.zeros(15, dtype=bool)
    done[:10] = True  # those have their votes: never picked, and last
    assert set(batch_order(delta, head, np.zeros(15), batch=4, done=done)[:5]) == set(range(10, 15))


def test_a_vote_is_worth_most_where_it_informs_many_open_pairs() -> None:
    """Two directions the head is equally unsure of: a vote along the one most open pairs lie
    along lowers more uncertainty (and is asked first) than a vote along the one pairs already
    voted on lie along; the greedy order stays on that side only until it is learnt. Where taste
    groups disagree, every other pick is theirs."""
    delta = np.vstack([np.tile([2.0, 0.0], (8, 1)), np.tile([0.0, 2.0], (8, 1))])
    head = LaplaceHead(np.zeros(2), np.eye(2), 0)
    done = np.zeros(16, dtype=bool)
    done[9:] = True  # seven of the second direction's pairs already have their votes
    reduction = expected_reduction(delta, head.cov, np.full(16, 0.25), delta[~done].T @ delta[~done])
    assert reduction[0] > 2 * reduction[8]
    assert batch_order(delta, head, np.zeros(16), batch=2, done=done)[0] < 8
    floor = np.zeros(16)
    floor[5] = 0.4  # the taste groups' heads disagree on pair 5 only
    order = batch_order(delta, head, floor, batch=4)
    assert order[1] == 5 and order[0] != 5


def test_votes_refit_the_head_and_the_next_pair_is_the_least_sure(tmp_path: Path) -> None:
    pairs, fa, fb = planted_pairs(60)
    planted = Planted(pairs, fa, fb)
    lab = make_lab(tmp_path, pairs, planted)
    lab.create_session("s", "ds", {"order": MODEL_UNCERTAIN, "uncertainty_model": "tiny", "refit_every": 8})
    w = np.random.default_rng(5).normal(size=D)
    lab.join("s", "al")
    row = {p.id: i for i, p in enumerate(pairs)}
    for _ in range(7):
        item = lab.next_item("s", "al")
        lab.vote("s", "al", item.pair.id, hidden_vote(w, fa, fb, row[item.pair.id]), displayed_order=item.displayed_order)
        lab.uncertain.wait(30)
    status = lab.selection_status("s")
    assert status["head_version"] is None and not planted.calls
    assert "No reward head yet: 7 of the 8 decisive" in status["note"] and "active" in status["note"]
    item = lab.next_item("s", "al")
    lab.vote("s", "al", item.pair.id, hidden_vote(w, fa, fb, row[item.pair.id]), displayed_order=item.displayed_order)
    held = lab.next_item("s", "al")  # the 8th vote: this request queues the first fit (and is served in the active order)
    assert lab.uncertain.wait(30)
    status = lab.selection_status("s")
    assert status["head_version"] == 1 and status["head_votes"] == 8 and planted.calls == [("tiny", 0)]
    assert "fitted on 8 of 8 decisive votes (planted features)" in status["note"]
    sid = lab.session("s").id
    head = lab.uncertain.head(sid)
    assert lab.next_item("s", "al").pair.id == held.pair.id  # a served pair stays al's until answered
    open_at_fit = [pid for pid in head.order if pid not in {j.pair_id for j in lab.judgments("s")}]
    lab.vote("s", "al", held.pair.id, hidden_vote(w, fa, fb, row[held.pair.id]), displayed_order=held.displayed_order)
    voted = {j.pair_id for j in lab.judgments("s")}
    # The head's first pick is the open pair whose vote lowers its uncertainty over the open pairs
    # most (the head refitted here on the same votes), and pairs are served in its order.
    first = min(open_at_fit, key=head.order.get)
    delta = project(fa, fb)
    fitted_on = [j for j in lab.judgments("s") if j.pair_id != held.pair.id]  # the 8 votes the head was fitted on
    refit = fit_head(delta[[row[j.pair_id] for j in fitted_on]], np.array([str(getattr(j.outcome, "value", j.outcome)) == "A" for j in fitted_on]),
                     prior_precision(delta))
    mu = delta @ refit.w
    is_open = np.array([p.id in open_at_fit for p in pairs])
    reduction = expected_reduction(delta, refit.cov, np.exp(-np.abs(mu)) / (1 + np.exp(-np.abs(mu))) ** 2,
                                   delta[is_open].T @ delta[is_open])
    assert row[first] == int(np.argmax(np.where(is_open, reduction, -np.inf)))
    assert lab.next_item("s", "al").pair.id == min((pid for pid in head.order if pid not in voted), key=head.order.get)
    for _ in range(7):
        item = lab.next_item("s", "al")
        lab.vote("s", "al", item.pair.id, hidden_vote(w, fa, fb, row[item.pair.id]), displayed_order=item.displayed_order)
    lab.next_item("s", "al")
    assert lab.uncertain.wait(30) and lab.uncertain.head(sid).version == 2 and lab.uncertain.head(sid).votes == 16
    assert len(planted.calls) == 1  # features are computed once per session, then every refit reuses them
    progress = lab.session_progress("s")
    assert progress["selection"]["head_votes"] == 16 and progress["judgments"] == 16


def test_a_refit_in_progress_never_blocks_serving_or_voting(tmp_path: Path) -> None:
    pairs, fa, fb = planted_pairs(40)
    gate = threading.Event()
    planted = Planted(pairs, fa, fb, gate=gate)
    lab = make_lab(tmp_path, pairs, planted)
    lab.create_session("s", "ds", {"order": MODEL_UNCERTAIN, "policy_model": "tiny", "refit_every": 4})
    lab.join("s", "al")
    for _ in range(4):
        item = lab.next_item("s", "al")
        lab.vote("s", "al", item.pair.id, "A", displayed_order=item.displayed_order)
    item = lab.next_item("s", "al")  # queues the first fit, which now waits on the gate inside the feature model
    assert planted.entered.wait(30)
    try:
        status = lab.selection_status("s")
        assert status["refitting"] and status["head_version"] is None and "being fitted on 4 votes" in status["note"]
        # With the refit stuck mid-way, votes and next pairs still come back (served in the active order).
        for _ in range(6):
            lab.vote("s", "al", item.pair.id, "B", displayed_order=item.displayed_order)
            item = lab.next_item("s", "al")
            assert item is not None
        assert not lab.uncertain.wait(0) and lab.uncertain.head(lab.session("s").id) is None
    finally:
        gate.set()
    assert lab.uncertain.wait(30)
    assert lab.uncertain.head(lab.session("s").id).votes >= 4
    lab.next_item("s", "al")  # 10 votes now: 4 + 4 more since the first fit asked for one, so the next is queued
    assert lab.uncertain.wait(30) and lab.uncertain.head(lab.session("s").id).version == 2


def test_a_failing_fit_is_reported_and_serving_goes_on(tmp_path: Path) -> None:
    pairs, fa, fb = planted_pairs(20)

    def broken(model: str, layer: int, pairs: Sequence[Pair]):
        raise RuntimeError("no such model")

    lab = make_lab(tmp_path, pairs, broken)
    lab.create_session("s", "ds", {"order": MODEL_UNCERTAIN, "policy_model": "nope", "refit_every": 2})
    lab.join("s", "al")
    for _ in range(3):
        item = lab.next_item("s", "al")
        lab.vote("s", "al", item.pair.id, "A", displayed_order=item.displayed_order)
    assert lab.next_item("s", "al") is not None
    assert lab.uncertain.wait(30)
    status = lab.selection_status("s")
    assert status["head_version"] is None and "no such model" in status["error"] and "The last fit failed" in status["note"]
    assert status["doing"].startswith("refit failed: RuntimeError: no such model")
    assert lab.next_item("s", "al") is not None


def test_taste_groups_that_disagree_are_asked_first(tmp_path: Path) -> None:
    """Two length lovers and two short lovers: once annotator_analysis finds the two groups, every
    other pick at the head of the queue is a pair whose sides differ most in length (where the
    groups' heads disagree)."""
    rng = np.random.default_rng(3)
    n = 120
    words = ["fox", "dog", "answer", "preference", "brown", "lazy", "quick", "jumps"]
    pairs, lengths = [], []
    for i in range(n):
        la, lb = int(rng.integers(2, 60)), int(rng.integers(2, 60))
        pairs.append(Pair(f"question {i}?", " ".join(rng.choice(words, la)), " ".join(rng.choice(words, lb)), id=f"p{i:03d}"))
        lengths.append((la, lb))
    la, lb = np.array(lengths, dtype=float).T
    fa = np.column_stack([np.log(la), rng.normal(size=(n, 3))])  # the feature model sees length, and noise
    fb = np.column_stack([np.log(lb), rng.normal(size=(n, 3))])
    lab = make_lab(tmp_path, pairs, Planted(pairs, fa, fb))
    lab.create_session("s", "ds", {"order": MODEL_UNCERTAIN, "policy_model": "tiny", "refit_every": 8, "overlap": 4})
    rules = {"long1": 1, "long2": 1, "short1": -1, "short2": -1}
    for name in rules:
        lab.join("s", name)
    for _ in range(30):
        for name, sign in rules.items():
            item = lab.next_item("s", name)
            a, b = len(item.pair.response_a.split()), len(item.pair.response_b.split())
            choice = "A" if sign * (a - b) > 0 else "B"
            if rng.random() < 0.1:
                choice = {"A": "B", "B": "A"}[choice]
            lab.vote("s", name, item.pair.id, choice, displayed_order=item.displayed_order)
            lab.uncertain.wait(30)
    lab.next_item("s", "long1")
    assert lab.uncertain.wait(60)
    head = lab.uncertain.head(lab.session("s").id)
    assert sorted(sorted(m) for m in head.groups.values()) == [["long1", "long2"], ["short1", "short2"]]
    assert "taste groups" in lab.selection_status("s")["note"]
    assert lab.uncertain._pool is not None  # the analysis ran in the child process, off the serving threads' interpreter lock
    lab.uncertain.close()
    gap = {p.id: abs(np.log(a) - np.log(b)) for p, a, b in zip(pairs, la, lb, strict=True)}
    disputed = sorted(head.order, key=head.order.get)[1:16:2]  # the groups' picks among the refit's first 2k
    assert np.median([gap[p] for p in disputed]) > np.quantile(list(gap.values()), 0.75)


def test_default_features_read_a_real_checkpoint_through_the_activation_cache(tmp_path: Path, tiny_checkpoint) -> None:
    """No feature source given: the store's home loads the session's model and caches its activations."""
    pairs, _, _ = planted_pairs(24)
    store = Store(tmp_path / "workbench.sqlite")
    store.import_pairs("ds", pairs)
    lab = LabelingStore(store)
    lab.create_session("s", "ds", {"order": MODEL_UNCERTAIN, "uncertainty_model": str(tiny_checkpoint("llama")), "refit_every": 4})
    lab.join("s", "al")
    for _ in range(4):
        item = lab.next_item("s", "al")
        longer = len(item.pair.response_a) > len(item.pair.response_b)
        lab.vote("s", "al", item.pair.id, "A" if longer else "B", displayed_order=item.displayed_order)
    lab.next_item("s", "al")
    assert lab.uncertain.wait(120)
    status = lab.selection_status("s")
    assert status["error"] is None and status["head_votes"] == 4, status
    assert "layer 1" in status["note"]  # the middle of the tiny model's 2 layers
    assert any((tmp_path / "cache" / "activations").iterdir())
    item = lab.next_item("s", "al")
    assert item is not None and item.pair.id not in {j.pair_id for j in lab.judgments("s")}


def test_the_statistics_view_says_what_the_order_does(tmp_path: Path) -> None:
    """selection_status before the first head, then with one: refits, votes since, the feature
    model and the heads' held-out accuracy (each head on the votes that came after it), and the
    statistics view's Markdown shows it."""
    from plugins.labeling.manage import report_markdown
    from workbench.labeling.analysis import session_report
    from workbench.labeling.verdict import session_verdict

    pairs, fa, fb = planted_pairs(80)
    lab = make_lab(tmp_path, pairs, Planted(pairs, fa, fb))
    lab.create_session("s", "ds", {"order": MODEL_UNCERTAIN, "policy_model": "tiny", "refit_every": 8})
    lab.join("s", "al")
    status = lab.selection_status("s")
    assert status["doing"].startswith("waiting for 8 more decisive votes before the first refit") and status["refits"] == 0
    w = np.random.default_rng(7).normal(size=D)
    row = {p.id: i for i, p in enumerate(pairs)}
    for _ in range(27):
        item = lab.next_item("s", "al")
        assert lab.uncertain.wait(30)  # a fit this request queued reads its votes before the next one lands
        lab.vote("s", "al", item.pair.id, hidden_vote(w, fa, fb, row[item.pair.id]), displayed_order=item.displayed_order)
    status = lab.selection_status("s")
    # Fits on 8, 16 and 24 votes (each asked for by the request after the vote that completed the batch).
    assert status["refits"] == 3 and status["head_votes"] == 24 and status["votes_since_refit"] == 3
    assert status["doing"] == "ranking by expected uncertainty reduction" and status["features"] == "planted features"
    held = status["heldout_accuracy"]
    assert held["n"] == 16 and held["ci"][0] <= held["rate"] <= held["ci"][1]
    assert held["rate"] > 0.5  # a noiseless linear taste: the heads predict the votes they had not seen
    assert status["self_accuracy"]["n"] == 24 and status["self_accuracy"]["rate"] >= held["rate"]
    text = report_markdown(session_report(lab, "s"), session_verdict(lab, "s"))
    assert "#### Selection: model-uncertain" in text and "| doing | ranking by expected uncertainty reduction |" in text
    assert f"| held-out accuracy (each head on the votes after it) | {held['rate']:.2f} [" in text and "n 16 |" in text


def test_the_app_serves_the_refit_from_its_own_model_service(tmp_path: Path, tiny_checkpoint) -> None:
    """An AppContext's LabelingStore reads features through the app's ModelService and activation
    cache: after a refit the service holds the one model, and the app's own request for it is
    that same object (no second copy loaded)."""
    from workbench.context import AppContext
    from workbench.settings import Settings

    ctx = AppContext(Settings(home=tmp_path))
    pairs, _, _ = planted_pairs(16)
    ctx.store.import_pairs("ds", pairs)
    model = str(tiny_checkpoint("llama"))
    lab = ctx.labeling
    lab.create_session("s", "ds", {"order": MODEL_UNCERTAIN, "uncertainty_model": model, "refit_every": 4})
    lab.join("s", "al")
    for _ in range(4):
        item = lab.next_item("s", "al")
        lab.vote("s", "al", item.pair.id, "A", displayed_order=item.displayed_order)
    assert not ctx.models  # nothing loaded before the first fit
    lab.next_item("s", "al")
    assert lab.uncertain.wait(120)
    assert lab.selection_status("s")["error"] is None and lab.selection_status("s")["refits"] == 1
    assert len(ctx.models) == 1
    loaded = next(iter(ctx.models.values()))
    assert ctx.get_model(model) is loaded and len(ctx.models) == 1
    assert any(ctx.activation_cache.root.iterdir())  # the activations went to the app's cache


def test_the_held_out_tally_starts_again_when_the_sessions_pairs_change(tmp_path: Path) -> None:
    """The heads' weights live in a projection computed from the session's pairs: once the dataset
    is replaced by a larger one, an older head cannot predict in the new basis, so the held-out
    tally counts only heads fitted on the new pairs (it counted 16 votes before the change)."""
    pairs, fa, fb = planted_pairs(90)
    lab = make_lab(tmp_path, pairs[:80], Planted(pairs, fa, fb))
    lab.create_session("s", "ds", {"order": MODEL_UNCERTAIN, "policy_model": "tiny", "refit_every": 8})
    lab.join("s", "al")
    w = np.random.default_rng(7).normal(size=D)
    row = {p.id: i for i, p in enumerate(pairs)}

    def vote(n: int) -> None:
        for _ in range(n):
            item = lab.next_item("s", "al")
            assert lab.uncertain.wait(30)
            lab.vote("s", "al", item.pair.id, hidden_vote(w, fa, fb, row[item.pair.id]), displayed_order=item.displayed_order)

    vote(27)
    assert lab.selection_status("s")["heldout_accuracy"]["n"] == 16
    lab.store.import_pairs("ds", pairs, replace=True)
    vote(16)  # fits on 32 (the first in the new basis: no tally) and 40 (the 32-vote head on the 8 after it)
    status = lab.selection_status("s")
    assert status["head_votes"] == 40 and status["heldout_accuracy"]["n"] == 8


def test_a_replaced_dataset_is_served_with_its_new_pairs(tmp_path: Path) -> None:
    """SQLite gives a replaced dataset's new row the old id: the session's pair cache must still
    see the new pairs (it served the old ids, which no longer exist: NotFound)."""
    pairs, fa, fb = planted_pairs(20)
    lab = make_lab(tmp_path, pairs, Planted(pairs, fa, fb))
    lab.create_session("s", "ds")
    lab.join("s", "al")
    item = lab.next_item("s", "al")
    lab.vote("s", "al", item.pair.id, "A", displayed_order=item.displayed_order)
    renamed = [Pair(p.prompt, p.response_a, p.response_b, id=f"new-{p.id}") for p in pairs]
    lab.store.import_pairs("ds", renamed, replace=True)
    served = lab.next_item("s", "al")
    assert served is not None and served.pair.id.startswith("new-")
