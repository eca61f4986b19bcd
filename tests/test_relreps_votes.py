"""Per-annotator labeling votes become colouring columns of the latent explorer.

A real labeling session (the SQLite labeling store, two annotators) over a small imported
dataset; the view adds ``vote:<annotator>`` and ``vote:majority`` and draws with them.
"""
from __future__ import annotations

import holoviews as hv
import pytest
from sessions import verbosity_pairs
from test_relreps_view import explorer_context

from workbench.data.types import Judgment, Outcome, Pair
from workbench.geometry import MAJORITY, add_vote_columns, dataset_judgments, items_frame, pair_items, vote_columns

# alice and bob's votes on p00..p05; p06..p09 are not judged by anyone.
ALICE = {"p00": "A", "p01": "B", "p02": "tie", "p03": "A", "p04": "both_bad", "p05": "skip"}
BOB = {"p00": "A", "p01": "A", "p02": "tie", "p03": "B", "p05": "B"}


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, tiny_checkpoint):
    context = explorer_context(tmp_path_factory.mktemp("relreps-votes") / "home", tiny_checkpoint, "votes-toy",
                               verbosity_pairs(10, id=lambda i: f"p{i:02d}"))
    lab = context.labeling
    lab.create_session("judge-verbosity", "votes-toy", {"overlap": 2})
    for who, votes in (("alice", ALICE), ("bob", BOB)):
        lab.join("judge-verbosity", who)
        for pid, outcome in votes.items():
            order = lab.item("judge-verbosity", who, pid).displayed_order
            lab.vote("judge-verbosity", who, pid, outcome, displayed_order=order, rationale="unsure" if outcome == "skip" else "")
    return context


def _by_key(frame, column):
    return dict(zip(frame["key"], frame[column], strict=True))


def test_votes_of_a_real_session_become_columns_per_response(ctx):
    judgments = dataset_judgments(ctx.labeling, "votes-toy")
    assert sorted(judgments) == ["alice", "bob"] and len(judgments["alice"]) == 6
    assert dataset_judgments(ctx.labeling, "no-such-dataset") == {}
    frame = add_vote_columns(items_frame(pair_items(ctx.store.get_pairs("votes-toy"))), judgments)
    assert {"vote:alice", "vote:bob", MAJORITY} <= set(frame.columns)
    alice, bob, major = _by_key(frame, "vote:alice"), _by_key(frame, "vote:bob"), _by_key(frame, MAJORITY)
    assert (alice["p00:A"], alice["p00:B"]) == ("chosen", "rejected")
    assert (alice["p01:A"], alice["p01:B"]) == ("rejected", "chosen")
    assert alice["p02:A"] == alice["p02:B"] == "tie" and alice["p04:B"] == "both_bad"
    assert alice["p05:A"] == "none" and alice["p09:B"] == "none"  # a skip and an unjudged pair
    assert bob["p04:A"] == "none" and (bob["p05:A"], bob["p05:B"]) == ("rejected", "chosen")
    assert (major["p00:A"], major["p00:B"]) == ("chosen", "rejected")  # both chose A
    assert major["p01:A"] == major["p01:B"] == "split"  # one A, one B
    assert major["p02:A"] == "tie" and major["p04:A"] == "both_bad"  # alice alone
    assert (major["p05:A"], major["p05:B"]) == ("rejected", "chosen")  # alice skipped: bob's B decides
    assert major["p07:A"] == "none"


def test_no_judgments_add_no_columns_and_several_sessions_are_kept_apart():
    frame = items_frame(pair_items([Pair("q", "a", "b", id="x")]))
    assert add_vote_columns(frame, {}).columns.tolist() == frame.columns.tolist()
    two = {"s1/alice": [Judgment("x", "alice", Outcome.A)], "s2/alice": [Judgment("x", "alice", Outcome.B)]}
    cols = vote_columns(["x", "x"], ["A", "B"], two)
    assert cols == {"vote:s1/alice": ["chosen", "rejected"], "vote:s2/alice": ["rejected", "chosen"], MAJORITY: ["split", "split"]}


def test_view_offers_vote_columns_and_draws_with_them(ctx):
    from plugins.relreps.view import RelRepsView

    view = RelRepsView(ctx)
    view.model_a.value, view.model_b.value, view.dataset.value = "llama", "qwen2", "votes-toy"
    view.n_anchors.value, view.k.value = 6, 3
    analysis = view.run()
    assert {"vote:alice", "vote:bob", MAJORITY} <= set(view.color_by.options)
    for column in ("vote:alice", MAJORITY):
        view.color_by.value = column  # recolours from the same analysis
        assert view.analysis is analysis
        assert all(isinstance(p, hv.Points) and p.opts.get().kwargs["color"] == column for p in view.elements)
        assert all(column in [d.name for d in p.vdims] for p in view.elements)
        hv.render(view.plots.object, backend="bokeh")  # the linked layout really draws
    assert set(analysis.frame["vote:bob"]) == {"chosen", "rejected", "tie", "none"}
