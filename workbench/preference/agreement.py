"""How far annotators agree, and whether the side a response was shown on swayed them.

- Cohen's κ: two annotators, the items both judged (nominal).
- Fleiss' κ: any number of annotators per item (items with fewer than two are left out); a
  varying number of raters per item uses each item's own n_i in its observed agreement.
- Krippendorff's α: missing data allowed, with a nominal, ordinal or interval distance. For
  vote strength use the ordinal scale of ``signed_strength`` (A clear < A slight < tie <
  B slight < B clear). When a session holds soft votes (a judge's P(A better)), the nominal
  α would round 0.55 and 0.95 to the same "A": ``agreement_report`` then also gives α with
  the interval metric on ``vote_value`` (soft where there is one, else 1 / ½ / 0), says so,
  and gives its percentile bootstrap interval over items (``interval_alpha``).
- ``live_bias``: the position and length effects while labeling, each with its interval, the
  votes it needs, and a warning once the interval excludes 0.5.
- Position bias: among decisive votes (A or B), the share won by the response shown on the
  left, with a two-sided binomial test against 0.5. When the pairs' sources are known and no
  source was ever shown on both sides (AlpacaEval: output_1 is always the baseline, shown
  left), "left wins" is the same event as "that source wins", so no test can separate
  position from quality: the report says so (``confounded``) and gives no p-value.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
from scipy.stats import binomtest

from workbench.data.types import Judgment, Pair, pair_sources, vote_value
from workbench.preference.intervals import LEVEL, rate_summary

ALPHA_RESAMPLES = 1000

NOMINAL_OUTCOMES = ("A", "B", "tie", "both_bad")


def cohen_kappa(labels_1: Sequence[Hashable], labels_2: Sequence[Hashable]) -> float:
    """κ = (p_o − p_e) / (1 − p_e) for two aligned label lists; NaN when undefined (p_e = 1)."""
    if len(labels_1) != len(labels_2):
        raise ValueError(f"label lists differ in length ({len(labels_1)} vs {len(labels_2)})")
    n = len(labels_1)
    if n == 0:
        return float("nan")
    p_o = sum(x == y for x, y in zip(labels_1, labels_2, strict=True)) / n
    c1, c2 = Counter(labels_1), Counter(labels_2)
    p_e = sum(c1[k] * c2[k] for k in c1) / n**2
    return float("nan") if p_e == 1 else (p_o - p_e) / (1 - p_e)


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' κ from an ``[items, categories]`` count table (rows with < 2 ratings are dropped)."""
    counts = np.asarray(counts, dtype=np.float64)
    n_i = counts.sum(axis=1)
    counts, n_i = counts[n_i >= 2], n_i[n_i >= 2]
    if len(counts) == 0:
        return float("nan")
    p_i = (np.sum(counts**2, axis=1) - n_i) / (n_i * (n_i - 1))
    p_bar = p_i.mean()
    p_j = counts.sum(axis=0) / n_i.sum()
    p_e = np.sum(p_j**2)
    return float("nan") if p_e == 1 else float((p_bar - p_e) / (1 - p_e))


def krippendorff_alpha(data: np.ndarray, level: str = "nominal") -> float:
    """α for a ``[annotators, items]`` matrix of numeric codes with NaN for missing ratings.

    Built from the coincidence matrix (Krippendorff 2011); ``level`` picks the distance:
    nominal (0/1), ordinal (rank-based, cumulative marginals) or interval (squared difference).
    """
    data = np.asarray(data, dtype=np.float64)
    values = np.unique(data[~np.isnan(data)])
    if len(values) < 2:
        return float("nan")
    index = {v: i for i, v in enumerate(values)}
    k = len(values)
    o = np.zeros((k, k))
    for col in data.T:
        present = col[~np.isnan(col)]
        m = len(present)
        if m < 2:
            continue
        codes = np.array([index[v] for v in present])
        pair_counts = np.zeros((k, k))
        np.add.at(pair_counts, (codes[:, None].repeat(m, 1), codes[None, :].repeat(m, 0)), 1)
        pair_counts[np.diag_indices(k)] -= np.bincount(codes, minlength=k)  # no self-pairs
        o += pair_counts / (m - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    if n <= 1:
        return float("nan")
    if level == "nominal":
        delta = 1.0 - np.eye(k)
    elif level == "ordinal":
        cum = np.cumsum(n_c)
        lo, hi = np.minimum.outer(np.arange(k), np.arange(k)), np.maximum.outer(np.arange(k), np.arange(k))
        between = cum[hi] - np.where(lo > 0, cum[np.maximum(lo - 1, 0)], 0)  # sum of n_g for g in [lo, hi]
        delta = (between - (n_c[lo] + n_c[hi]) / 2) ** 2
    elif level == "interval":
        delta = np.subtract.outer(values, values) ** 2
    else:
        raise ValueError(f"unknown level {level!r}; use nominal, ordinal or interval")
    d_o = np.sum(o * delta)
    d_e = np.sum(np.outer(n_c, n_c) * delta) / (n - 1)
    return float("nan") if d_e == 0 else float(1 - d_o / d_e)


def interval_alpha(data: np.ndarray, level: float = LEVEL, resamples: int = ALPHA_RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """Interval-metric α of an ``[annotators, items]`` matrix (NaN = missing) with a percentile
    bootstrap interval over items (Hayes & Krippendorff 2007 resample units too).

    With the squared difference, α = 1 − (n − 1)·Σ_u D_u / (2(n·Σv² − (Σv)²)), every sum over
    pairable values (items with ≥ 2), D_u = Σ_{i≠j}(v_i − v_j)² / (m_u − 1): each resample only
    reweights the per-item sums, so all resamples are one matrix product. The point value is
    ``krippendorff_alpha(data, "interval")``."""
    data = np.asarray(data, dtype=np.float64)
    cols = [c[~np.isnan(c)] for c in data.T]
    cols = [c for c in cols if len(c) >= 2]
    if not cols:
        return {"alpha": float("nan"), "ci": None, "items": 0, "values": 0, "level": level}
    m = np.array([len(c) for c in cols], dtype=np.float64)
    d_u = np.array([np.sum(np.subtract.outer(c, c) ** 2) / (len(c) - 1) for c in cols])
    s1, s2 = np.array([c.sum() for c in cols]), np.array([np.sum(c**2) for c in cols])
    counts = np.vstack([np.ones(len(cols)), np.random.default_rng(seed).multinomial(len(cols), np.full(len(cols), 1 / len(cols)), resamples)])
    n, d_o, t1, t2 = counts @ m, counts @ d_u, counts @ s1, counts @ s2
    d_e = 2 * (n * t2 - t1**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(d_e > 0, 1 - (n - 1) * d_o / d_e, np.nan)
    boot = alpha[1:][~np.isnan(alpha[1:])]
    tail = (1 - level) / 2
    ci = [float(np.quantile(boot, tail)), float(np.quantile(boot, 1 - tail))] if len(boot) and not np.isnan(alpha[0]) else None
    return {"alpha": float(alpha[0]), "ci": ci, "items": len(cols), "values": int(m.sum()), "level": level}


def signed_strength(j: Judgment) -> float | None:
    """A vote on the ordinal scale −2 (A clear) … 0 (tie) … 2 (B clear); None for both-bad/skip.

    A vote without a strength counts as clear (the labeling view's default)."""
    outcome = getattr(j.outcome, "value", j.outcome)
    if outcome == "tie":
        return 0.0
    if outcome not in ("A", "B"):
        return None
    s = float(j.strength or 2)
    return -s if outcome == "A" else s


CONFOUNDED_NOTE = "position bias cannot be separated from model quality in this session"


@dataclass
class PositionBias:
    decisive: int
    left_wins: int
    rate: float  # share of decisive votes that went to the left response
    p_value: float  # NaN when confounded: there is no valid test
    confounded: bool = False
    note: str | None = None


def position_bias(judgments: Sequence[Judgment], sources: Mapping[str, tuple[str, str]] | None = None) -> PositionBias:
    """Left-side wins among decisive votes; ``sources`` (pair id → (source A, source B)) enables
    the confound check: every source shown on one side only means position is source."""
    left = 0
    decisive = 0
    sides: dict[str, set[str]] = defaultdict(set)
    for j in judgments:
        outcome = getattr(j.outcome, "value", j.outcome)
        if outcome in ("A", "B"):
            decisive += 1
            left += outcome == j.displayed_order[0]
            if sources and (src := sources.get(j.pair_id)):
                shown = dict(zip("AB", src, strict=True))
                sides[shown[j.displayed_order[0]]].add("left")
                sides[shown[j.displayed_order[1]]].add("right")
    if decisive == 0:
        return PositionBias(0, 0, float("nan"), float("nan"))
    if sides and all(len(s) == 1 for s in sides.values()):
        always = ", ".join(f"{name} always {next(iter(s))}" for name, s in sorted(sides.items()))
        return PositionBias(decisive, left, left / decisive, float("nan"), True, f"{CONFOUNDED_NOTE} ({always})")
    return PositionBias(decisive, left, left / decisive, float(binomtest(left, decisive, 0.5).pvalue))


def _by_item(judgments: Sequence[Judgment]) -> dict[str, dict[str, Judgment]]:
    items: dict[str, dict[str, Judgment]] = defaultdict(dict)
    for j in judgments:
        items[j.pair_id][j.annotator] = j
    return items


def agreement_report(judgments: Sequence[Judgment], sources: Mapping[str, tuple[str, str]] | None = None) -> dict[str, Any]:
    """Cohen's κ per annotator pair (and their mean), Fleiss' κ, Krippendorff's α (nominal
    outcome and ordinal strength; with soft votes also interval α on the vote values, stated in
    ``alpha_vote_value["metric"]``) and the position bias (confound-checked when ``sources``
    maps pair ids to their two sources), over the non-skip votes."""
    votes = [j for j in judgments if getattr(j.outcome, "value", j.outcome) in NOMINAL_OUTCOMES]
    items = _by_item(votes)
    annotators = sorted({j.annotator for j in votes})
    pairwise = {}
    for x, y in combinations(annotators, 2):
        shared = [pid for pid, by in items.items() if x in by and y in by]
        if shared:
            kappa = cohen_kappa([items[p][x].outcome for p in shared], [items[p][y].outcome for p in shared])
            pairwise[f"{x}|{y}"] = {"kappa": kappa, "n": len(shared)}
    counts = np.array([[sum(getattr(j.outcome, "value", j.outcome) == c for j in by.values()) for c in NOMINAL_OUTCOMES]
                       for by in items.values()]).reshape(-1, len(NOMINAL_OUTCOMES))
    pair_ids = list(items)
    code = {c: i for i, c in enumerate(NOMINAL_OUTCOMES)}
    nominal = np.full((len(annotators), len(pair_ids)), np.nan)
    ordinal = np.full_like(nominal, np.nan)
    for col, pid in enumerate(pair_ids):
        for row, name in enumerate(annotators):
            j = items[pid].get(name)
            if j is not None:
                nominal[row, col] = code[getattr(j.outcome, "value", j.outcome)]
                s = signed_strength(j)
                ordinal[row, col] = np.nan if s is None else s
    kappas = [v["kappa"] for v in pairwise.values() if not np.isnan(v["kappa"])]
    bias = position_bias(votes, sources)
    soft = sum(j.soft is not None for j in votes)
    return {
        "annotators": annotators,
        "items_with_overlap": int(np.sum(counts.sum(axis=1) >= 2)) if len(counts) else 0,
        "cohen_pairwise": pairwise,
        "cohen_mean": float(np.mean(kappas)) if kappas else float("nan"),
        "fleiss_kappa": fleiss_kappa(counts) if len(counts) else float("nan"),
        "alpha_nominal": krippendorff_alpha(nominal, "nominal"),
        "alpha_ordinal_strength": krippendorff_alpha(ordinal, "ordinal"),
        "soft_votes": soft,
        "alpha_vote_value": _vote_value_alpha(items, annotators, pair_ids) if soft else None,
        "position_bias": bias.__dict__,
    }


def _vote_value_alpha(items: Mapping[str, Mapping[str, Judgment]], annotators: list[str], pair_ids: list[str]) -> dict[str, Any]:
    """α on the votes' values with the interval metric (soft votes present), with its interval and the rule stated."""
    values = np.array([[np.nan if (j := items[pid].get(a)) is None or (v := vote_value(j)) is None else v for pid in pair_ids]
                       for a in annotators]).reshape(len(annotators), len(pair_ids))
    return {**interval_alpha(values), "metric": "interval (squared difference) on vote values: a soft vote's P(A better), "
            "else A = 1, tie = ½, B = 0; both-bad left out"}


def annotator_stats(judgments: Sequence[Judgment], gold: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Per annotator: votes, outcome shares, left-side rate, median seconds per item, gold accuracy,
    and agreement with the majority of the other annotators on shared items."""
    gold = gold or {}
    items = _by_item(judgments)
    out = []
    for name in sorted({j.annotator for j in judgments}):
        mine = [j for j in judgments if j.annotator == name]
        outcomes = Counter(getattr(j.outcome, "value", j.outcome) for j in mine)
        spans = [j.submitted_at - j.started_at for j in mine if j.started_at is not None and j.submitted_at is not None]
        graded = [j for j in mine if j.pair_id in gold and getattr(j.outcome, "value", j.outcome) != "skip"]
        agree, shared = 0, 0
        for j in mine:
            others = Counter(getattr(o.outcome, "value", o.outcome) for a, o in items[j.pair_id].items() if a != name)
            others.pop("skip", None)
            if others and getattr(j.outcome, "value", j.outcome) != "skip":
                (top, n_top), *rest = others.most_common()
                if not rest or rest[0][1] < n_top:  # a clear majority among the others
                    shared += 1
                    agree += getattr(j.outcome, "value", j.outcome) == top
        out.append({
            "annotator": name, "votes": len(mine), **{f"share_{k}": outcomes[k] / len(mine) for k in ("A", "B", "tie", "both_bad", "skip")},
            "left_rate": position_bias(mine).rate,
            "median_seconds": float(np.median(spans)) if spans else None,
            "gold_accuracy": (sum(getattr(j.outcome, "value", j.outcome) == gold[j.pair_id] for j in graded) / len(graded)) if graded else None,
            "majority_agreement": agree / shared if shared else None,
        })
    return out


def live_bias(pairs: Sequence[Pair], judgments: Sequence[Judgment], level: float = LEVEL) -> list[dict[str, Any]]:
    """Position and length effects so far, for watching while labeling (issue 25 §4): per effect
    the share of decisive votes won by the left / the longer response with its Wilson interval,
    the n at which the current rate would be decided, and a ``warning`` once the interval
    excludes 0.5 (position: confounded with the source when every source sits on one side)."""
    by_id = {p.id: p for p in pairs}
    decisive = [j for j in judgments if getattr(j.outcome, "value", j.outcome) in ("A", "B") and j.pair_id in by_id]
    left = [float(getattr(j.outcome, "value", j.outcome) == j.displayed_order[0]) for j in decisive]
    longer = [float((len(by_id[j.pair_id].response_a) > len(by_id[j.pair_id].response_b)) == (getattr(j.outcome, "value", j.outcome) == "A"))
              for j in decisive if len(by_id[j.pair_id].response_a) != len(by_id[j.pair_id].response_b)]
    sources = {p.id: src for p in pairs if (src := pair_sources(p.metadata or {}))}
    confounded = position_bias(decisive, sources).confounded
    out = []
    for effect, result, side in (("position", left, "the left response"), ("length", longer, "the longer response")):
        s = rate_summary(np.asarray(result), level)
        warn = None
        if s["decided"] and not (effect == "position" and confounded):
            warn = (f"{effect} effect: {side} wins {s['rate']:.2f} [{s['ci'][0]:.2f}, {s['ci'][1]:.2f}] of {s['n']} decisive votes; "
                    f"the {level:.0%} interval excludes 0.5")
        out.append({"effect": effect, "wins": side, "n": s["n"], "rate": s["rate"] if s["n"] else None,  # no NaN: this goes out as JSON
                    "ci": s["ci"], "decided": s["decided"],
                    "votes_needed": s["votes_needed"], "note": CONFOUNDED_NOTE if effect == "position" and confounded else s["note"],
                    "warning": warn})
    return out
