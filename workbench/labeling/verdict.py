"""Did it win, and what explains the votes: the answer part of a session's statistics.

``session_report`` (analysis.py) describes the votes; this module answers the question a
base-vs-tuned session is made for. It lives apart because ``workbench.preference.winrate``
builds on analysis.py. Each part is computed on its own, so a session too small for the
factor regression still gets its win rates, and a refusal is shown in place of its part.
"""
from __future__ import annotations

from typing import Any

from workbench.data.types import identical_votes
from workbench.errors import WorkbenchError
from workbench.labeling.analysis import fmt_num, recorded_candidate, session_report
from workbench.labeling.sessions import LabelingStore
from workbench.preference.agreement import live_bias
from workbench.preference.bradley_terry import fit_bradley_terry, source_comparisons
from workbench.preference.factors import explain_votes
from workbench.preference.fragility import fragility_text
from workbench.preference.intervals import LEVEL
from workbench.preference.winrate import did_it_win


def session_verdict(labeling: LabelingStore, session: str, *, candidate: str | None = None, ties: str = "davidson",
                    level: float = LEVEL) -> dict[str, Any]:
    """``{"did_it_win": …, "explained": …}``; a part that cannot be computed is ``{"error": message}``.

    The candidate is the source under test: ``candidate`` if given, else the one recorded when
    the session was made (tuned in a from-run session, steered in a steering one), so the
    verdict is about that side even when it is rated lower. Only a session with neither asks
    about the top-rated source (``candidate_from`` says which rule chose it).
    """
    pairs, judgments = labeling.pairs(session), labeling.judgments(session)
    same_votes, same_pairs = identical_votes(pairs, judgments)
    chosen_by = "given" if candidate else "recorded when the session was made"
    candidate = candidate or recorded_candidate(pairs)
    try:
        if candidate is None:
            chosen_by = "top-rated (no candidate recorded)"
            candidate = str(fit_bradley_terry(source_comparisons(pairs, judgments), ties=ties, intervals=False).table()[0]["source"])
        won: dict[str, Any] = {**did_it_win(pairs, judgments, candidate, ties=ties, level=level), "candidate_from": chosen_by}
    except WorkbenchError as err:
        won = {"error": str(err)}
    won["identical_pairs"], won["identical_votes"] = same_pairs, same_votes
    try:
        explained: dict[str, Any] = explain_votes(pairs, judgments)
    except WorkbenchError as err:  # e.g. no factor differs between any voted pair's responses
        explained = {"error": str(err)}
    return {"did_it_win": won, "explained": explained}


def session_stats(labeling: LabelingStore, session: str) -> dict[str, Any]:
    """The few lines the fast labeling page shows its owner: whether labeling can stop, and the
    verdict with its interval and fragility (the same figures as the tab and ``label stats``)."""
    report, verdict = session_report(labeling, session), session_verdict(labeling, session)
    won = verdict["did_it_win"]
    rows = dict(verdict_tables(verdict)["win"])
    bias = live_bias(labeling.pairs(session), labeling.judgments(session))
    return {"stopping_hint": report["stopping_hint"], "error": won.get("error"),
            "lines": ([] if won.get("error") else [f"{rows['candidate']}", f"verdict: {won['verdict']}",
                                                   f"win rate: {rows[next(k for k in rows if k.startswith('win rate'))]}",
                                                   f"fragility: {rows['fragility']}"]) + bias_lines(bias),
            "bias": bias, "warnings": [b["warning"] for b in bias if b["warning"]],
            "identical_pairs": won["identical_pairs"]}


def bias_lines(bias: list[dict[str, Any]]) -> list[str]:
    """One line per effect of ``live_bias``: the warning once its interval excludes 0.5, else the
    rate with its interval and what it would take to tell."""
    out = []
    for b in bias:
        if b["warning"]:
            out.append(f"warning: {b['warning']}")
        elif b["n"]:
            out.append(f"{b['effect']} effect: {b['wins']} wins {fmt_num(b['rate'], '.2f')} [{fmt_num(b['ci'][0], '.2f')}, "
                       f"{fmt_num(b['ci'][1], '.2f')}] of {b['n']}; {b['note']}")
    return out


def _ci(row: dict[str, Any], key: str) -> str:
    ci = row.get(f"{key}_ci")
    return f"{fmt_num(row[key])} [{fmt_num(ci[0])}, {fmt_num(ci[1])}]" if ci else fmt_num(row[key])


def _gap_text(gap: dict[str, Any]) -> str:
    where = f"{gap['source']} − {gap['other']}: θ gap {fmt_num(gap['gap'])} [{fmt_num(gap['low'])}, {fmt_num(gap['high'])}]"
    return f"{where}, " + ("first place is settled" if gap["separated"] else "the interval includes 0: first place is not settled")


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
        support = won["length_support"]
        lc = _ci(won, "lc_win_rate") + (f" — {support['note']}" if support["extrapolates"] else "")
        out["win"] = [
            ("candidate", f"{won['candidate']} ({won['candidate_from']}) vs {', '.join(won['opponents'])} ({won['n']} votes: "
                          f"{won['wins']} won, {won['losses']} lost, {won['ties']} ties)"),
            ("verdict", won["verdict"]),
            (f"win rate ({level} Wilson interval, ties ½)", _ci(won, "win_rate")),
            ("fragility", fragility_text(won["fragility"])),
        ]
        if won.get("discrete"):
            d = won["discrete"]
            out["win"].append(("discrete votes (soft → A/B/tie)", f"{_ci(d, 'win_rate')}; {d['verdict']}"))
        if won.get("bradley_terry_discrete"):
            out["win"].append(("Bradley–Terry on discrete votes", ", ".join(
                f"{r['source']} {fmt_num(r['theta'])} [{fmt_num(r['low'])}, {fmt_num(r['high'])}]" for r in won["bradley_terry_discrete"])))
        out["win"] += [
            (f"length-controlled win rate ({level} CI)", lc),
            ("equal-length band", f"{support['band']}: {fmt_num(support['band_win_rate'])} over {support['band_n']} votes"
                                  f" (candidate longer in {support['share_longer']:.0%}, shorter in {support['share_shorter']:.0%})"),
            ("mean length difference (characters)", f"{won['mean_length_diff_chars']:+.0f}"),
            ("first place (Bradley–Terry)", _gap_text(won["top_gap"])),
            ("ranking fragility", won["ranking_fragility"]["note"]),
        ]
        bias = won["position_bias"]
        if bias["confounded"]:
            out["win"].append(("position bias", bias["note"]))
    if won.get("identical_pairs"):
        out["win"].append(("identical answers", f"{won['identical_pairs']} pair(s) with the same text from both sources "
                                                f"({won['identical_votes']} votes) are left out"))
    if not out["factors_error"]:
        out["factors"] = [{"factor": f["factor"], "coef": fmt_num(f["coef"]), "ci": f"[{fmt_num(f['low'])}, {fmt_num(f['high'])}]",
                           "odds_ratio": fmt_num(f["odds_ratio"]), "p": fmt_num(f["p_value"])} for f in explained["factors"]]
    return out
