"""The recsae plugin: its job type, the ``workbench sae`` commands and the Panel view, on one
real RecSAE run of the shipped synthetic dataset (trained once per module through the CLI,
as a user starts it: a background job followed with --wait)."""
from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import holoviews as hv
import pytest
from typer.testing import CliRunner

from workbench.context import AppContext
from workbench.errors import ConfigError, WorkbenchError
from workbench.sae.synthetic import synthetic_paths
from workbench.settings import Settings

INTERACTIONS, ITEMS, _ = synthetic_paths()
SMALL = ["--epochs", "8", "--max-len", "20", "--d-model", "32", "--expansion", "4", "--k", "4", "--samples", "60000",
         "--set", "sae.batch_size=256"]


def wb(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args, "--home", str(home)],
                          capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("recsae") / "home"


@pytest.fixture(scope="module")
def trained(home):
    """``workbench sae recsae … --wait``: the finished run's id and the command's output."""
    out = wb("sae", "recsae", "--interactions", str(INTERACTIONS), "--attributes", str(ITEMS), *SMALL, "--wait", home=home)
    assert out.returncode == 0, out.stdout + out.stderr
    run_id = re.search(r"started (\S+) in ", out.stdout).group(1)
    return run_id, out.stdout


@pytest.fixture(scope="module")
def ctx(home, trained):
    return AppContext(Settings(home=home))


@pytest.fixture(scope="module")
def view(ctx, trained):
    """One view with the run open (loading encodes every state once); the tests below share it."""
    from plugins.recsae.view import RecSAEView

    v = RecSAEView(ctx)
    v.open_selected_run()
    return v


def test_plugin_registers_job_cli_and_view(ctx):
    import typer

    from workbench.app.panel_views import collect_panel_views
    from workbench.jobs import JobManager

    info = next(i for i in ctx.plugins.infos if i.name == "recsae")
    assert info.status == "ok" and set(info.hooks) == {"cli_commands", "job_types", "panel_views"}
    assert JobManager.for_context(ctx).job_type("recsae").name == "recsae"
    views = {v.slug: v for v in collect_panel_views(ctx)}
    assert views["recsae"].title == "RecSAE · concept dictionary"
    assert "RecSAE · concept dictionary" in views["recsae"].build(ctx).objects[0].object
    app = typer.Typer()
    ctx.plugins.collect("cli_commands", None, app=app)
    assert "sae" in {g.name for g in app.registered_groups}


def test_cli_run_is_followed_to_the_end(trained, home):
    run_id, stdout = trained
    assert re.search(r"^(queued|running): ", stdout, re.M) and f"run {run_id}: finished" in stdout
    summary = json.loads(stdout[stdout.index("{"):stdout.rindex("}") + 1])
    assert {"test_hr@10", "sae_fvu", "sae_l0", "sae_dead_fraction", "n_latents"} <= set(summary)
    assert summary["n_latents"] == 4 * 32 and summary["sae_l0"] == pytest.approx(4.0)
    assert (home / "runs" / run_id / "recsae" / "concepts.json").exists()


def test_view_lists_the_run_and_shows_a_table_sorted_by_f1(view, trained):
    run_id, _ = trained
    assert run_id in view.run_select.options.values() and view.run_select.value == run_id
    assert view.result.folder == view.ctx.settings.runs_dir / run_id / "recsae"
    assert not view.status.visible
    assert list(view.numbers) == ["HR@10", "NDCG@10", "sampled HR@10", "popularity HR@10", "popularity sampled HR@10",
                                  "tied test items", "FVU", "L0", "dead fraction", "latents with F1 ≥ 0.5"]
    summary = view.result.summary
    assert view.numbers["sampled HR@10"] == pytest.approx(summary["test_sampled_hr@10"])
    assert view.numbers["popularity HR@10"] == pytest.approx(summary["test_popularity_hr@10"])
    assert view.numbers["tied test items"] == summary["tied_test_items"] == 0  # the synthetic log has no tied timestamps
    assert view.numbers["L0"] == pytest.approx(4.0) and view.numbers["FVU"] == pytest.approx(summary["sae_fvu"])
    assert summary["sae_fvu"] < 0.9  # the dictionary explains a real share of the variance, not ~none (FVU 1)
    assert "HR@10 **" in view.summary.object and "latents with F1 ≥ 0.5" in view.summary.object
    # A recommender below popularity is flagged on the page (issue 21 §4); this one is not below it.
    assert view.weak.visible == (summary["test_hr@10"] <= summary["test_popularity_hr@10"])
    view.result.summary = {**summary, "test_hr@10": 0.079, "test_popularity_hr@10": 0.092}
    view.show_summary()
    assert view.weak.visible and "does not beat popularity" in view.weak.object and "0.079" in view.weak.object
    view.result.summary = summary
    view.show_summary()
    table = view.table.value
    assert len(table) == 128
    assert ["latent", "concept", "f1", "precision", "recall", "enrichment", "p_value", "frequency"] == list(table.columns[:8])
    assert table["f1"].is_monotonic_decreasing and table["f1"].iloc[0] > 0
    view.only_concepts.value = True
    assert (view.table.value["concept"] != "—").all() and len(view.table.value) < 128
    view.only_concepts.value = False


def test_selecting_a_row_fills_the_feature_card(view):
    table = view.table.value
    view.table.selection = [1]
    latent = int(table["latent"].iloc[1])
    concept = view.result.dictionary.get(latent)
    assert view.latent == latent and view.card.visible and f"Latent {latent}" in view.card_title.object
    assert f"F1 **{concept.f1:.3f}**" in view.card_stats.object
    seqs = view.sequences.value
    assert len(seqs) == len(concept.top_sequences) >= 3 and seqs["rank"].tolist()[:3] == [1, 2, 3]
    assert seqs["activation"].is_monotonic_decreasing and " → " in seqs["recent items (oldest → newest)"].iloc[0]
    bars = view.attributes_plot.object.get(0)
    assert isinstance(bars, hv.Bars) and list(bars.dimension_values("attribute"))[0] == concept.concept
    hist = view.histogram_plot.object
    assert isinstance(hist, hv.Histogram) and hist.dimension_values("sequences").sum() > 0
    assert view.concept.value == concept.concept and view.intervention_plot.object is None


def test_intervention_updates_the_card(view):
    top = int(view.table.value["latent"].iloc[0])
    view.select_latent(top)
    view.mode.value, view.strength.value = "boost", 4.0
    asyncio.run(view._on_intervene(None))
    assert not view.status.visible, view.status.object
    out = view.last_intervention
    assert out.latent == top and out.mode == "boost" and out.concept == view.result.dictionary.get(top).concept
    # The card shows what the intervention did; that boosting a concept latent pulls its items up is tested on the
    # planted data at full size (tests/test_sae.py): this 8-epoch, 60k-sample SAE is too small for the direction to be stable.
    assert out.users_changed > 0 and out.share_after != out.share_before
    assert f"{out.share_before:.1%} → {out.share_after:.1%}" in view.intervention_note.object
    bars = view.intervention_plot.object
    assert isinstance(bars, hv.Bars) and bars.dimension_values("share").tolist() == pytest.approx(
        [out.share_before, out.share_after, out.catalog_share])
    view.mode.value = "ablate"
    assert view.strength.disabled
    ablated = view.intervene()
    assert ablated.mode == "ablate" and ablated.value == 0.0 and ablated.share_before == pytest.approx(out.share_before)
    assert view.panel().get_root() is not None  # the whole page, card included, serialises to Bokeh models


def test_bad_folders_and_unfinished_runs_are_shown_in_the_page(ctx, tmp_path):
    from plugins.recsae.view import RecSAEView
    from workbench.jobs import JobManager

    view = RecSAEView(ctx)
    view.folder.value = str(tmp_path)  # outside the runs folder and the data folders
    asyncio.run(view._on_open_folder(None))
    assert view.status.visible and view.status.alert_type == "danger" and "outside the runs folder" in view.status.object
    empty = ctx.settings.home / "data" / "not-a-run"
    empty.mkdir(parents=True, exist_ok=True)
    view.folder.value = str(empty)
    asyncio.run(view._on_open_folder(None))
    assert "is not a finished RecSAE result (missing config.json" in view.status.object and view.result is None
    view.folder.value = str(ctx.settings.runs_dir / "no-such-run")
    asyncio.run(view._on_open_folder(None))
    assert "does not exist" in view.status.object

    # A real run that has not finished: submitted and at once cancelled.
    run = JobManager.for_context(ctx).submit("recsae", {"interactions": str(INTERACTIONS), "attributes": str(ITEMS), "epochs": 1,
                                                        "max_len": 20, "d_model": 32, "sae": {"expansion": 4, "k": 4}})
    view.refresh_runs()
    view.run_select.value = run.id
    asyncio.run(view._on_open_run(None))
    assert re.search(rf"Run {run.id} (has not started yet|is still running)", view.status.object), view.status.object
    run.cancel()
    run.wait(timeout=120)
    asyncio.run(view._on_open_run(None))
    assert re.search(rf"Run {run.id} (was cancelled|failed)", view.status.object) and "concept dictionary is not finished" in view.status.object
    assert "Traceback" not in view.status.object


def test_cli_concepts_and_intervene(trained, home, view):
    from plugins.recsae.cli import sae_app

    run_id, _ = trained
    cli = CliRunner()
    out = cli.invoke(sae_app, ["concepts", run_id[:-2], "--top", "5", "--home", str(home)])
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0].endswith(f"{run_id}/recsae") and "HR@10" in lines[1] and lines[2].split()[:3] == ["latent", "concept", "f1"]
    f1s = [float(line.split()[2]) for line in lines[3:]]
    assert 1 <= len(f1s) <= 5 and f1s == sorted(f1s, reverse=True)
    rows = json.loads(cli.invoke(sae_app, ["concepts", str(home / "runs" / run_id), "--all", "--top", "200", "--json", "--home", str(home)]).stdout)
    assert len(rows) == 128 and [r["f1"] for r in rows] == sorted((r["f1"] for r in rows), reverse=True)

    top = int(view.table.value["latent"].iloc[0])
    out = cli.invoke(sae_app, ["intervene", run_id, "--latent", str(top), "--mode", "boost", "--strength", "4", "--home", str(home)])
    assert out.exit_code == 0, out.output
    assert f"latent {top} · boost" in out.stdout and "before" in out.stdout and "after" in out.stdout

    unknown = cli.invoke(sae_app, ["concepts", "no-such-run", "--home", str(home)])
    assert isinstance(unknown.exception, ConfigError) and "No run 'no-such-run'" in str(unknown.exception)
    bad_mode = cli.invoke(sae_app, ["intervene", run_id, "--latent", "0", "--mode", "sideways", "--home", str(home)])
    assert isinstance(bad_mode.exception, WorkbenchError) and "Unknown intervention 'sideways'" in str(bad_mode.exception)


def test_cli_missing_file_exits_2_and_starts_nothing(tmp_path):
    """Through the real entry point: a WorkbenchError is one clear message and exit code 2 (an unknown
    run raises the same way; see test_cli_concepts_and_intervene)."""
    home = tmp_path / "home"
    out = wb("sae", "recsae", "--interactions", str(tmp_path / "nope.csv"), "--attributes", str(ITEMS), home=home)
    assert out.returncode == 2 and "nope.csv" in out.stderr and "No such file" in out.stderr and "Traceback" not in out.stderr
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())


def test_lm_sae_job_from_the_cli(tmp_path, tiny_checkpoint):
    """`workbench sae lm … --wait` runs the LM path as a job on a tiny checkpoint and a pair file."""
    import json

    from workbench.sae.lm import LMSAEResult

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"Q{i}?", "chosen": f"A long and careful answer {i} with detail.",
                                         "rejected": f"No {i}."}) + "\n" for i in range(10)), encoding="utf-8")
    home = tmp_path / "home"
    out = wb("sae", "lm", "--model", str(tiny_checkpoint("llama")), "--dataset", str(pairs), "--layer", "1",
             "--expansion", "2", "--k", "4", "--samples", "4000", "--set", "sae.batch_size=32", "--wait", home=home)
    assert out.returncode == 0, out.stdout + out.stderr
    folder = Path(re.search(r"latents: (\S+)lm_latents.json", out.stdout).group(1))
    result = LMSAEResult.load(folder)
    assert result.n_pairs == 10 and result.layer == 1 and result.separating(1)[0].logits_up
    bad = wb("sae", "lm", "--model", str(tiny_checkpoint("llama")), "--dataset", str(tmp_path / "none.jsonl"), home=home)
    assert bad.returncode == 2 and "none.jsonl" in bad.stderr + bad.stdout
