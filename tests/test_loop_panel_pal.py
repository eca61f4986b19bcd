"""The loop panel's PAL branch, its handlers called as the owner's browser would (real context, real
PAL worker on a tiny random checkpoint): the job is followed to the end, the blind step says why it does
not apply and stays disabled, and the verdict is PAL's held-out accuracy against Bradley–Terry with
intervals, per annotator too."""
from __future__ import annotations

from pathlib import Path

from plugins.labeling.loop_panel import PAL_NO_BLIND, fit, make_blind, verdict
from workbench.context import AppContext
from workbench.data.types import Pair
from workbench.labeling import LabelingStore
from workbench.settings import Settings
from workbench.store import Store


def test_pal_branch_from_votes_to_its_accuracy_verdict(tmp_path: Path, tiny_checkpoint) -> None:
    settings = Settings(home=tmp_path / "home")
    settings.home.mkdir(parents=True)
    topics = [f"topic {i}" for i in range(30)]
    with Store(settings.db_path) as store:
        store.import_pairs("taste", [Pair(f"Tell me about {t}.", f"{t} " + "is long and detailed and thorough " * 4, f"{t}: short.",
                                          id=f"t{i:02d}") for i, t in enumerate(topics)])
        lab = LabelingStore(store)
        lab.create_session("duo", "taste")
        for who, long in {"alice": True, "bob": False}.items():  # opposite tastes: one BT model cannot serve both
            lab.join("duo", who)
            for i in range(len(topics)):
                lab.vote("duo", who, f"t{i:02d}", "A" if long else "B")
    ctx = AppContext(settings)
    ctx.activate(str(tiny_checkpoint("llama")))
    states = list(fit(ctx, "duo", "pal", None, None))
    assert any("⏳" in status for status, _, _ in states[:-1]), states  # followed while it ran
    status, fitted, blind_button = states[-1]
    assert "✓ Finished." in status and PAL_NO_BLIND in status, status
    assert fitted["kind"] == "pal" and fitted["name"].startswith("pal-") and f"/?tab=runs&run={fitted['name']}" in status
    assert blind_button["interactive"] is False  # nothing to make a blind session of
    assert [m for m, _ in make_blind(ctx, "duo", fitted, 4.0, 0, None)] == [PAL_NO_BLIND]
    out = verdict(ctx, "", fitted, None)
    assert out.startswith(f"**4 · Verdict** on PAL run [{fitted['name']}]"), out
    assert "| BT |" in out and "| PAL-A |" in out and "95% interval" in out
    assert "| alice |" in out and "| bob |" in out  # per annotator
    assert any(s in out for s in ("beats Bradley–Terry", "Not enough held-out votes to tell", "Bradley–Terry beats")), out
