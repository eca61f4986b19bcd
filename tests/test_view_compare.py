"""Two checkpoints in the Panel views: the logit lens (two heatmaps and their per-layer KL),
the latent explorer (agreement of the two spaces) and LM-SAE (latents that moved most).

Tiny random checkpoints written here: a base, a copy with one block perturbed, and a model
with a different tokenizer (refused where tokens must line up).
"""
from __future__ import annotations

import asyncio
import io
from pathlib import Path

import holoviews as hv
import numpy as np
import pandas as pd
import pytest
import torch
from checkpoints import FAMILY_CONFIGS, make_tokenizer, write_tiny_checkpoint
from sessions import verbosity_pairs

from workbench.context import AppContext
from workbench.geometry.stitching import StitchingResult
from workbench.settings import Settings

PERTURBED = 1  # block index: lens points 0..1 are unchanged, 2 changes


def write_perturbed_copy(base_dir, out):
    """The base model with noise added to one block's MLP (same tokenizer, same family)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base_dir)
    torch.manual_seed(7)
    with torch.no_grad():
        for p in model.model.layers[PERTURBED].mlp.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(out)
    return out


def write_other_tokenizer_llama(out):
    """A llama whose tokenizer has a smaller vocabulary: its token ids mean other strings."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    tok = make_tokenizer(vocab_size=300)
    config = LlamaConfig(vocab_size=len(tok), max_position_embeddings=128, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, **FAMILY_CONFIGS["llama"][1])
    AutoModelForCausalLM.from_config(config).save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def write_wide_llama(out):
    """A llama of another width (48) and depth (3 blocks), with the base's tokenizer."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    tok = make_tokenizer()
    kwargs = {**FAMILY_CONFIGS["llama"][1], "hidden_size": 48, "num_hidden_layers": 3}
    config = LlamaConfig(vocab_size=len(tok), max_position_embeddings=128, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, **kwargs)
    AutoModelForCausalLM.from_config(config).save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def write_compared_models(models: Path) -> None:
    """Under ``models``: the tiny llama "base", its copy with one perturbed block "tuned", and "wide"."""
    base = write_tiny_checkpoint("llama", models / "base")
    write_perturbed_copy(base, models / "tuned")
    write_wide_llama(models / "wide")


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    home = tmp_path_factory.mktemp("view-compare") / "home"
    write_compared_models(home / "models")
    write_other_tokenizer_llama(home / "models" / "othertok")
    context = AppContext(Settings(home=home))
    for name in ("base", "tuned", "othertok", "wide"):
        context.get_model(str(home / "models" / name))
    context.store.import_pairs("toy", verbosity_pairs(16, id=lambda i: f"p{i}", preferred="B"), source="test", format="unlabeled")
    return context


# --- logit lens --------------------------------------------------------------------------------

def lens_view(ctx, compare):
    from plugins.logit_lens.view import LogitLensView

    view = LogitLensView(ctx)
    view.model.value, view.compare.value, view.prompt.value = "base", compare, "The quick brown fox jumps"
    return view


def test_lens_compare_shows_two_heatmaps_and_kl_from_the_perturbed_layer_on(ctx):
    view = lens_view(ctx, "tuned")
    view.run_grid()
    assert view.heatmap_b.visible and view.kl_plot.visible and not view.kl_note.visible
    assert "base" in view.heatmap.object.get(0).opts.get().kwargs["title"]
    assert "tuned" in view.heatmap_b.object.get(0).opts.get().kwargs["title"]
    kl = view.kl.kl
    assert kl.shape == (ctx.models["base"].n_layers + 1, len(view.grid.input_tokens))
    assert np.all(kl[:PERTURBED + 1] == 0) and np.all(kl[PERTURBED + 1:] > 1e-6)
    table = view.kl_table.object
    assert list(table["layer"]) == [0, 1, 2] and table["mean KL (nats)"].iloc[-1] > 0
    hv.render(view.kl_plot.object, backend="bokeh")
    hv.render(view.heatmap_b.object, backend="bokeh")
    csv = pd.read_csv(io.StringIO(view._grid_csv().getvalue()))
    assert set(csv["model"]) == {"base", "tuned"}
    # Same model twice: nothing to compare, one heatmap.
    view.compare.value = "base"
    view.run_grid()
    assert not view.heatmap_b.visible and not view.kl_plot.visible and view.kl is None


def test_lens_compare_refuses_kl_across_tokenizers_and_says_what_still_works(ctx):
    view = lens_view(ctx, "othertok")
    asyncio.run(view._on_grid(None))
    assert not view.status.visible  # each model's own lens still works
    assert view.heatmap.object is not None and view.heatmap_b.visible
    assert view.kl is None and not view.kl_plot.visible and view.kl_note.visible
    assert "tokenizers differ" in view.kl_note.object and "latent explorer" in view.kl_note.object


def test_tokens_are_shown_as_text_not_reprs():
    from plugins.logit_lens.view import shown

    assert shown(" fox\n") == "·fox⏎" and shown("\xa0") == "⍽" and shown("") == "∅"


# --- latent explorer ---------------------------------------------------------------------------

def relreps_view(ctx, model_b):
    from plugins.relreps.view import RelRepsView

    view = RelRepsView(ctx)
    view.model_a.value, view.model_b.value, view.dataset.value = "base", model_b, "toy"
    view.n_anchors.value, view.k.value = 6, 4
    return view


def test_agreement_by_layer_of_a_model_and_its_perturbed_copy(ctx):
    view = relreps_view(ctx, "tuned")
    analysis = view.run()
    rows = analysis.agreement
    assert [(r["layer_a"], r["layer_b"]) for r in rows] == [(0, 0), (1, 1), (2, 2)]
    # Identical up to the perturbed block: every metric is perfect there, and lower after it.
    for r in rows[:PERTURBED + 1]:
        assert r["absolute_mean_cosine"] == pytest.approx(1, abs=1e-5) and r["relative_knn_overlap"] == pytest.approx(1)
    assert rows[-1]["absolute_mean_cosine"] < 1 - 1e-4
    table = view.agreement.object
    assert list(table.columns[:4]) == ["layer A", "layer B", "absolute · k-NN overlap", "absolute · mean cosine"]
    assert "relative · MRR" in table.columns and "layer i of A against layer i of B" in view.agreement_note.object
    assert list(view.similarity.object.columns[:3]) == ["space", "space A", "space B"]
    assert not view.similarity.object.isin(["cannot be computed (different widths)"]).any().any()
    assert all(str(c) not in {"0", "1", "2"} for c in view.stitching.object.columns)
    plot = hv.render(view.plots.object, backend="bokeh")
    assert plot is not None and view.elements[0].opts.get().kwargs["xlabel"] == "PC 1"


def test_agreement_across_widths_and_depths_says_what_cannot_be_computed(ctx):
    view = relreps_view(ctx, "wide")
    analysis = view.run()
    assert [(r["layer_a"], r["layer_b"]) for r in analysis.agreement] == [(0, 0), (1, 2), (2, 3)]  # paired by relative depth
    assert all(r["absolute_mean_cosine"] is None and r["relative_mean_cosine"] is not None for r in analysis.agreement)
    table = view.agreement.object
    assert (table["absolute · mean cosine"] == "cannot be computed (different widths)").all()
    assert table["absolute · k-NN overlap"].map(lambda v: isinstance(v, float)).all()
    sim = view.similarity.object.set_index("space")
    assert sim.loc["absolute", "MRR"] == "cannot be computed (different widths)" and isinstance(sim.loc["relative", "MRR"], float)
    assert "relative depth" in view.agreement_note.object
    assert not view.similarity.object.isna().any().any() and not table.isna().any().any()


def test_stitching_at_chance_is_flagged():
    from plugins.relreps.view import readable_stitching

    result = StitchingResult("pole", ["a", "b"], 20, 10, chance=0.6, rows=[
        {"representation": "relative", "trained_on": "A", "evaluated_on": "B", "accuracy": 0.6, "note": "stitched (zero-shot)"},
        {"representation": "relative", "trained_on": "B", "evaluated_on": "B", "accuracy": 0.9, "note": "native"},
        {"representation": "absolute", "trained_on": "A", "evaluated_on": "B", "accuracy": None, "note": "widths differ (32 vs 48)"}])
    table = readable_stitching(result)
    assert "at chance" in table["note"][0] and "60.0%" in table["note"][0]
    assert "at chance" not in table["note"][1]
    assert table["accuracy"][2] == "cannot be computed (different widths)"


# --- LM-SAE ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lm_sae_run(ctx):
    """A real LM-SAE run (worker process) on the base model at layer 2, the output of the perturbed block."""
    from workbench.jobs import JobManager

    run = JobManager.for_context(ctx).submit("lm-sae", {
        "model": str(ctx.settings.models_dir / "base"), "dataset": "toy", "layer": PERTURBED + 1,
        "sae": {"expansion": 2, "k": 4, "training_samples": 2_000, "batch_size": 64}})
    assert run.wait(timeout=400).status == "finished", run.manifest.error
    return run


def sae_view(ctx, run, compare):
    from plugins.recsae.view import RecSAEView

    view = RecSAEView(ctx)
    assert run.id in view.lm_run.options.values() and "dataset: toy" in view.lm_source.options
    view.lm_run.value, view.lm_compare.value, view.lm_source.value, view.lm_top.value = run.id, compare, "dataset: toy", 5
    return view


def test_lm_sae_lists_the_latents_that_moved_between_two_models(ctx, lm_sae_run):
    view = sae_view(ctx, lm_sae_run, "tuned")
    top = view.moved_latents()
    assert len(top) == 5 and top["mean_abs_shift"].is_monotonic_decreasing and top["mean_abs_shift"].iloc[0] > 1e-4
    assert view.shift.n_responses == 32 and view.shift.layer == PERTURBED + 1
    table = view.lm_table.value
    assert list(table.columns[:3]) == ["latent", "mean |B − A| per response", "mean shift (B − A)"]
    assert "A = **base** (the run's model), B = **tuned**" in view.lm_note.object
    assert view.panel().get_root() is not None
    # The run's model against itself: nothing moved.
    view.lm_compare.value = "base"
    same = view.moved_latents()
    assert (view.shift.table["mean_abs_shift"] == 0).all() and (same["shift"] == 0).all()
    # A session's responses are offered too (its dataset's pairs).
    ctx.labeling.create_session("votes", "toy")
    view.refresh_runs()
    view.lm_source.value = "session: votes"
    view.lm_limit.value = 4
    view.moved_latents()
    assert view.shift.n_responses == 8 and "(session: votes)" in view.lm_note.object


def test_lm_sae_refuses_other_tokenizers_and_widths_in_the_page(ctx, lm_sae_run):
    view = sae_view(ctx, lm_sae_run, "othertok")
    asyncio.run(view._on_shift(None))
    assert view.status.visible and view.status.alert_type == "danger"
    assert "tokenizers differ" in view.status.object and "latent explorer" in view.status.object and view.shift is None
    view.lm_compare.value = "wide"
    asyncio.run(view._on_shift(None))
    assert "reads 32-wide residual states" in view.status.object and "wide is 48 wide" in view.status.object
