"""Did it win, and what explains the votes: the answer part of a session's statistics.

``session_report`` (analysis.py) describes the votes; this module answers the question a
base-vs-tuned session is made for. It lives apart because ``workbench.preference.winrate``
builds on analysis.py. Each part is computed on its own, so a session too small for the
factor regression still gets its win rates, and a refusal is shown in place of its part.
"""
from __future__ import annotations

from typing import Any

from workbench.errors import WorkbenchError
from workbench.labeling.analysis import fmt_num, source_comparisons
from workbench.labeling.sessions import LabelingStore
from workbench.preference.bradley_terry import fit_bradley_terry
from workbench.preference.factors import explain_votes
from workbench.preference.winrate import did_it_win


def session_verdict(labeling: LabelingStore, session: str, *, candidate: str | None = None, ties: str = "davidson",
                    n_boot: int = 200) -> dict[str, Any]:
    """``{"did_it_win": …, "explained": …}``; a part that cannot be computed is ``{"error": message}``.

    Without ``candidate`` the top-rated source is asked about; with two sources that also
    answers for the other (its win rate is one minus this one's).
    """
    pairs, judgments = labeling.pairs(session), labeling.judgments(session)
    try:
        if candidate is None:
            candidate = str(fit_bradley_terry(source_comparisons(pairs, judgments), ties=ties, n_boot=0).table()[0]["source"])
        won: dict[str, Any] = did_it_win(pairs, judgments, candidate, ties=ties, n_boot=n_boot)
    except WorkbenchError as err:
        won = {"error": str(err)}
    try:
        explained: dict[str, Any] = explain_votes(pairs, judgments)
    except WorkbenchError as err:  # e.g. no factor differs between any voted pair's responses
        explained = {"error": str(err)}
    return {"did_it_win": won, "explained": explained}


def _ci(row: dict[str, Any], key: str) -> str:
    ci = row.get(f"{key}_ci")
    return f"{fmt_num(row[key])} [{fmt_num(ci[0])}, {fmt_num(ci[1])}]" if ci else fmt_num(row[key])


def verdict_tables(verdict: dict[str, Any]) -> dict[str, Any]:
    """The verdict as display rows, one copy for the Labeling tab and ``workbench label stats``:
    ``win`` (measure, value) rows or an ``error``, ``ratings`` and ``factors`` rows with CIs."""
    won, explained = verdict["did_it_win"], verdict["explained"]
    out: dict[str, Any] = {"win_error": won.get("error"), "factors_error": explained.get("error"), "win": [], "ratings": [],
                           "factors": []}
    if not out["win_error"]:
        level = f"{100 * won['level']:.0f}%"
        out["ratings"] = [{"source": r["source"], "theta": fmt_num(r["theta"]), "ci": f"[{fmt_num(r['low'])}, {fmt_num(r['high'])}]",
                           "elo": fmt_num(r["elo"], ".0f")} for r in won["bradley_terry"]]
        out["win"] = [
            ("candidate", f"{won['candidate']} vs {', '.join(won['opponents'])} ({won['n']} votes: {won['wins']} won, "
                          f"{won['losses']} lost, {won['ties']} ties)"),
            (f"win rate ({level} CI, ties ½)", _ci(won, "win_rate")),
            (f"length-controlled win rate ({level} CI)", _ci(won, "lc_win_rate")),
            ("mean length difference (characters)", f"{won['mean_length_diff_chars']:+.0f}"),
        ]
        bias = won["position_bias"]
        if bias["confounded"]:
            out["win"].append(("position bias", bias["note"]))
    if not out["factors_error"]:
        out["factors"] = [{"factor": f["factor"], "coef": fmt_num(f["coef"]), "ci": f"[{fmt_num(f['low'])}, {fmt_num(f['high'])}]",
                           "odds_ratio": fmt_num(f["odds_ratio"]), "p": fmt_num(f["p_value"])} for f in explained["factors"]]
    return out
