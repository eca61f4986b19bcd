"""The latent explorer's long run: every stage reported in order with a per-stage ETA, and a
repeated identical run (even from a fresh context, as after a server restart) is served from
the activation, stitching and projection caches with no model forward and no UMAP fit."""
from __future__ import annotations

import asyncio
from itertools import pairwise
from pathlib import Path

from plugins.relreps.view import STAGES, RelRepsView, StageClock
from workbench.context import AppContext
from workbench.data.types import Pair
from workbench.settings import Settings


def _context(home: Path, tiny_checkpoint) -> AppContext:
    """A context on ``home`` with the two tiny models loaded and a 20-pair dataset stored once."""
    ctx = AppContext(Settings(home=home))
    for family in ("llama", "qwen2"):
        ctx.get_model(str(tiny_checkpoint(family)))
    if not any(d["name"] == "toy" for d in ctx.store.list_datasets()):
        pairs = [Pair(prompt=f"Tell me about topic {i}.", response_a=f"Topic {i}: short.",
                      response_b=f"Topic {i} is a long subject; here is a detailed and careful explanation of it.",
                      metadata={"attribute": "verbosity", "a_pole": "concise", "b_pole": "verbose"}) for i in range(20)]
        ctx.store.import_pairs("toy", pairs, source="test", format="unlabeled")
    return ctx


def _view(ctx: AppContext, projection: str = "pca") -> RelRepsView:
    view = RelRepsView(ctx)
    view.model_a.value, view.model_b.value, view.dataset.value = "llama", "qwen2", "toy"
    view.n_anchors.value, view.k.value, view.projection.value = 8, 5, projection
    return view


def _count_forwards(ctx: AppContext) -> list[int]:
    """A forward hook on both models' top module: one count per batch actually run."""
    calls = [0]
    for name in ("llama", "qwen2"):
        ctx.get_model(name).model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_stage_clock_eta_comes_from_the_current_stage_rate():
    now = [0.0]
    clock = StageClock(lambda: now[0])
    assert clock.line("encode A", 0, 10) == "Stage 1/6 · encode A · 0/10 · ETA —"
    now[0] = 4.0
    assert clock.line("encode A", 2, 10) == "Stage 1/6 · encode A · 2/10 · ETA 16 s"
    now[0] = 100.0
    clock.line("encode B", 0, 4)  # a new stage restarts the rate: 100 s of encode A must not count
    now[0] = 101.0
    assert clock.line("encode B", 1, 4) == "Stage 2/6 · encode B · 1/4 · ETA 3 s"
    now[0] = 104.0
    assert clock.line("encode B", 4, 4) == "Stage 2/6 · encode B · 4/4 · done in 4.0 s"
    assert clock.percent("encode B", 2, 4) == 25 and clock.percent("project", 4, 4) == 100
    assert clock.summary() == "Finished: encode A 4.0 s · encode B 4.0 s"


def test_a_run_reports_every_stage_in_order_and_the_page_shows_it(tmp_path, tiny_checkpoint):
    view = _view(_context(tmp_path / "home", tiny_checkpoint))
    view.pooling.value = "last"  # a different cache entry than the other tests', so encoding runs batch by batch
    reports: list[tuple[str, int, int]] = []
    view.run(lambda stage, done, total: reports.append((stage, done, total)))
    assert list(dict.fromkeys(stage for stage, _, _ in reports)) == list(STAGES)
    for stage in STAGES:
        steps = [(done, total) for s, done, total in reports if s == stage]
        assert steps[0][0] == 0 and steps[-1][0] == steps[-1][1], (stage, steps)  # starts at 0, ends complete
        assert [d for d, _ in steps] == sorted(d for d, _ in steps)
    # 40 inputs in batches of at most 16 (fewer rows on a CPU when they are long, see
    # extract.CPU_BATCH_TOKENS): the encoder reports after each batch.
    encoded = [d for s, d, _ in reports if s == "encode A"]
    assert encoded[0] == 0 and encoded[-1] == 40 and len(encoded) >= 4, encoded
    assert all(0 < b - a <= 16 for a, b in pairwise(encoded)), encoded

    asyncio.run(view._on_run(None))  # the browser path: progress from the worker thread, then a summary
    assert not view.status.visible and not view.progress.visible
    assert view.stage_line.object.startswith("Finished: encode A ") and all(stage in view.stage_line.object for stage in STAGES)


def test_a_repeated_identical_run_runs_no_forward_and_no_umap_fit(tmp_path, tiny_checkpoint):
    first_ctx = _context(tmp_path / "home", tiny_checkpoint)
    forwards = _count_forwards(first_ctx)
    first = _view(first_ctx, "umap").run()
    assert forwards[0] >= 6  # at least 3 batches of 40 inputs per model: the hook does count real forwards
    assert not any(p.from_cache for p in first.projections.values())

    again_ctx = _context(tmp_path / "home", tiny_checkpoint)  # a fresh context: models reloaded, caches on disk only
    forwards = _count_forwards(again_ctx)
    again = _view(again_ctx, "umap").run()
    assert forwards[0] == 0
    assert all(p.from_cache for p in again.projections.values())  # a hit returns before any fit
    assert again.anchors == first.anchors
    assert again.stitching is not None and again.stitching == first.stitching  # read back from its cache file
    assert len(list((again_ctx.settings.cache_dir / "stitching").glob("*.json"))) == 1
    for name in first.projections:
        assert (again.projections[name].coords == first.projections[name].coords).all()
