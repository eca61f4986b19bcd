"""The logit-lens plugin: registered through the hook, and its Panel view runs and exports."""
from __future__ import annotations

import io

import holoviews as hv
import pandas as pd
import pytest

from workbench.context import AppContext
from workbench.errors import DataError, SecurityError
from workbench.settings import Settings


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, tiny_checkpoint):
    context = AppContext(Settings(home=tmp_path_factory.mktemp("lens-home")))
    context.activate(str(tiny_checkpoint("qwen2")))
    context.activate(str(tiny_checkpoint("llama")))
    return context


def test_plugin_contributes_the_panel_view(ctx):
    from workbench.app.panel_views import collect_panel_views

    views = {v.slug: v for v in collect_panel_views(ctx)}
    assert "logit-lens" in views
    built = views["logit-lens"].build(ctx)
    assert "Logit lens" in built.objects[0].object


def test_heatmap_has_every_layer_and_position_with_topk_hover(ctx):
    from plugins.logit_lens.view import LogitLensView

    view = LogitLensView(ctx)
    assert view.model.value == "llama" and view.model.options[:2] == ["qwen2", "llama"]
    view.prompt.value = "The quick brown fox"
    view.top_k.value = 3
    grid = view.run_grid()
    heat = view.heatmap.object.get(0)
    assert isinstance(heat, hv.HeatMap)
    n_points = ctx.models["llama"].n_layers + 1
    assert len(heat.data) == n_points * len(grid.input_tokens)
    assert heat.data["top_k"].str.count(r"\|").eq(2).all()  # three tokens with probabilities in every hover
    hv.render(view.heatmap.object, backend="bokeh")  # what the browser gets must render
    csv = pd.read_csv(io.StringIO(view._grid_csv().getvalue()))
    assert len(csv) == n_points * len(grid.input_tokens) * 3


def test_experiment_runner_compares_checkpoints_and_exports(ctx):
    from plugins.logit_lens.view import LogitLensView

    view = LogitLensView(ctx)
    view.compare.value = "qwen2"
    view.kind.value, view.target.value, view.latent.value, view.shots.value, view.limit.value = "repetition", "zh", "en", 2, 5
    seen = []
    results = view.run_experiment(progress=seen.append)
    assert [r.model_name for r in results] == ["llama", "qwen2"]
    assert seen == sorted(seen) and seen[-1] == 100
    curves = [el for el in view.plot.object.values()[0] if isinstance(el, hv.Curve)]
    assert len(curves) == 8  # P(zh) and P(en) for each checkpoint, each beside its control
    assert sum(c.label.startswith("control") for c in curves) == 4
    assert {"final_control_zh", "peak_control_en"} <= set(view.summary.object.columns) and view.control_note.visible
    hv.render(view.plot.object, backend="bokeh")
    assert list(view.summary.object["model"]) == ["llama", "qwen2"]
    assert all(not d.disabled for d in view.downloads)
    assert view.figure("png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in view.figure("svg")[:400]
    data = pd.read_csv(io.StringIO(view._results_csv().getvalue()))
    assert set(data["model"]) == {"llama", "qwen2"} and {"p_zh", "p_en", "entropy_bits"} <= set(data.columns)


def test_word_list_path_is_confined_to_data_roots(ctx, tmp_path):
    from plugins.logit_lens.view import LogitLensView

    outside = tmp_path / "elsewhere.csv"
    outside.write_text("en,zh\nwater,水\n", encoding="utf-8")
    view = LogitLensView(ctx)
    view.wordlist.value = str(outside)
    with pytest.raises(SecurityError):
        view.run_experiment()


def test_small_experiments_run_and_shared_token_sets_are_flagged(ctx):
    from plugins.logit_lens.view import LogitLensView

    data = ctx.settings.home / "data"
    data.mkdir(parents=True, exist_ok=True)
    words = data / "hindi.csv"  # the tiny vocabulary has no Devanagari token: every set is the same byte fragments
    words.write_text("en,hi\ncloud,बादल\nwater,पानी\nhouse,घर\ntree,पेड़\nriver,नदी\n", encoding="utf-8")
    view = LogitLensView(ctx)
    view.wordlist.value = str(words)
    view.kind.value, view.source.value, view.target.value, view.latent.value = "translation", "en", "hi", "en"
    for limit, shots in ((1, 4), (2, 1), (10, 0)):  # one example, two, and more asked for than exist
        view.limit.value, view.shots.value = limit, shots
        (result,) = view.run_experiment()
        assert len(result.examples) == min(limit, 5)
        hv.render(view.plot.object, backend="bokeh")
        assert view.figure("png")[:4] == b"\x89PNG"
    assert view.caveats.visible and "5 of 5 hi concepts have a token set identical" in view.caveats.object
    assert view.summary.object["final_control_hi"].notna().all()
    view.limit.value = 1
    view.run_experiment()
    assert "no control" in view.caveats.object and not view.control_note.visible
    view.shots.value = 5
    with pytest.raises(DataError, match="too few for 5-shot"):
        view.run_experiment()


def test_translation_shows_the_source_copy_curve_the_share_panel_and_new_summary_columns(ctx):
    from plugins.logit_lens.view import LogitLensView

    data = ctx.settings.home / "data"
    data.mkdir(parents=True, exist_ok=True)
    words = data / "copies.csv"  # forêt/forest and fleur/flower share their first tokens: dropped through the source
    words.write_text("en,fr,zh\nforest,forêt,森林\nflower,fleur,花\nmoon,lune,月亮\ncloud,nuage,云\nbook,livre,书\ntree,arbre,树\n",
                     encoding="utf-8")
    view = LogitLensView(ctx)
    view.wordlist.value = str(words)
    view.kind.value, view.source.value, view.target.value, view.latent.value = "translation", "fr", "zh", "en"
    view.shots.value, view.limit.value, view.compare.value = 1, 10, "llama"
    (result,) = view.run_experiment()
    assert result.n_source_overlap == 2 and len(result.examples) == 4
    top, shares, _entropy = view.plot.object.values()
    labels = [el.label for el in top if isinstance(el, hv.Curve)]
    assert "P(fr) source copy · llama" in labels and "P(en) latent · llama" in labels
    assert len([el for el in shares if isinstance(el, hv.Curve)]) == 3  # share beating the control, per language
    hv.render(view.plot.object, backend="bokeh")
    assert {"n_source_overlap", "peak_p_fr", "peak_median_en", "final_beats_control_zh", "carried_by_few"} <= set(view.summary.object.columns)
    assert "red ring" in view.control_note.object and view.figure("png")[:4] == b"\x89PNG"
