"""Noisy, or a different taste? Per-annotator taste, competence and taste groups.

Disagreement between annotators is either noise or taste. This module separates them:

- **Taste**: per annotator, an L2-regularised logistic regression of the vote on the factor
  differences ``explain_votes`` uses (``factors.vote_factor_rows``: length, lists, markdown,
  hedging, refusals, recorded poles), plus ``dataset_label`` (+1 when A is the dataset's own
  chosen, −1 when B) where the pairs carry one. Each difference enters as tanh(Δ/s), s the
  median non-zero |Δ| of that factor over all votes (as the length-controlled win rate bounds
  Δlen): one prior (λ = ``L2``) then fits every factor, and "longer is better" whatever the
  size of the gap is one coefficient rather than a poor linear fit. Coefficients are reported
  in ``explain_votes``' units at small differences (coef/s, the slope at Δ = 0; ``scale`` is s)
  with Laplace intervals (the inverse Hessian of the penalised fit).
- **Noisy** is "no evidence that the votes are anything but coin flips". The tests on the
  decisive votes (the taste model against a coin, a score test at β = 0; agreement with the sign
  of each factor and of the dataset's label; agreement with the other annotators' majority) are
  one test, ``tests["votes"]``: the smallest of their p-values, calibrated by ``NULL_DRAWS``
  coin-flip vote vectors on the same pairs (Westfall–Young min-p; the null is exact, as a coin
  is fully specified). Length, the verbosity pole and the others' majority often say the same
  thing; a Bonferroni over them paid for each copy (a voter following the dataset's label with
  30 % noise, 100 votes: not noisy in 11 of 20 seeds then, 14 of 20 now), while a coin still
  passes at ``ALPHA`` (2 of 200 simulated random voters were called not noisy). That test, gold
  accuracy and self-consistency on repeated pairs are then Bonferroni-corrected at ``ALPHA``.
  A competent voter with a unique taste is not noisy: their own factors predict their votes. A
  random voter's votes are unpredictable even from their own factors. Each raw p is in
  ``vote_tests``; ``fit`` keeps the likelihood-ratio test, the cross-validated gain and the
  strongest single factor as description.
  Limits of what votes can tell, measured on simulated voters over the demo pairs: a voter
  following a rule that no factor, no other annotator, no gold, no dataset label and no repeat
  reflects cannot be told from a random one (the evidence says which tests were possible); at
  100 votes a voter who agrees with their taste 65–70 % of the time is at the edge of what
  ``ALPHA`` = 0.01 can separate from a coin (the binomial p of 67/100 is 0.001), so such a
  voter may be flagged noisy, and then has no taste group; a taste for a factor that differs on
  few pairs (lists: 68 of the 240 demo pairs) shows only on those pairs.
- **Position**: the share of decisive votes for the side shown first, with its interval and a
  binomial p (``position``; only where both display orders occur, since otherwise it is the
  canonical A). A voter who always clicks left is, relative to the answers, a coin: noisy,
  with ``position_biased`` true and the evidence saying so. It is never a test of "not noisy".
- **Noisy annotators** get ``taste_group`` None (null in ``--json``): no taste explains their
  votes, so they join no group, and ``group_verdicts`` reports their votes apart.
- **Groups**: each non-noisy annotator's taste model predicts every voted pair (log-odds); those
  prediction vectors are merged by average-linkage agglomeration on cosine similarity while two
  clusters' mean similarity is at least ``GROUP_COSINE``: opposite tastes (cosine ≈ −1) and
  unrelated ones (≈ 0) stay apart. Comparing predictions rather than coefficients keeps two
  length lovers together when one credits length and the other the correlated list count.
- **Competence**: a one-coin Dawid–Skene model within each taste group. The item prior is the
  group's taste model, cross-fitted (each pair predicted by a fit on folds that exclude it), and
  each annotator's accuracy is the expected agreement of their votes with the latent label given
  the prior and the *other* members' votes (leave-self-out), iterated to a fixed point. Alone in
  a group (or noisy), the prior is their own cross-validated taste model. Gold accuracy and
  self-consistency are reported beside it with their n; ``competence`` is the n-weighted mean of
  the components present, each with its Wilson interval (``intervals.rate_interval``).

- **Ideal points** (when a model is chosen: ``embed`` here, ``model`` in ``session_annotators``):
  a PAL-A model on the model's features of the answers places each annotator at an ideal point;
  ``ideal_point`` per annotator (2-D point, distance to every other annotator with a bootstrap
  interval) and ``ideal_points`` (whether that grouping agrees with the factor groups) come from
  ``preference.ideal_points``.

Ties, both-bad and skips carry no direction and are left out (counted).
"""
from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import binom, binomtest, chi2, norm

from workbench.data.types import Judgment, Pair
from workbench.errors import DataError, WorkbenchError
from workbench.preference.bradley_terry import Comparisons, fit_bradley_terry, source_comparisons
from workbench.preference.factors import fit_logistic, vote_factor_rows
from workbench.preference.intervals import LEVEL, decided, rate_interval, wilson_interval, z_value
from workbench.preference.votes import VoteSource
from workbench.preference.winrate import did_it_win, duels

L2 = 1.0  # prior precision on scaled coefficients: shrinks a 100-vote fit, never dominates it
ALPHA = 0.01  # family-wise level of "not noisy" (Bonferroni over the tests made for one annotator)
GROUP_COSINE = 0.5  # two tastes are one when their mean cosine similarity is at least this
FOLDS = 5
MIN_VOTES = 10
DS_ROUNDS = 10
LABEL = "dataset_label"
NULL_DRAWS = 2000


def _outcome(j: Judgment) -> str:
    """The outcome as text, whether stored as an ``Outcome`` or a plain string."""
    return str(getattr(j.outcome, "value", j.outcome))


def _seed(text: str) -> int:
    """A stable seed from a name, so the same votes always give the same folds and results."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "little")


def _design(pairs: Sequence[Pair], judgments: Sequence[Judgment]) -> tuple[list[str], np.ndarray, np.ndarray, list[Judgment]]:
    """(factor names, X, y, the decisive judgments in row order): explain_votes' factors plus the
    dataset's own label when any pair carries one."""
    names, x, y = vote_factor_rows(pairs, judgments)
    by_id = {p.id: p for p in pairs}
    rows = [j for j in judgments if _outcome(j) in ("A", "B") and j.pair_id in by_id]  # vote_factor_rows' filter, same order
    if any(p.preferred in ("A", "B") for p in pairs):
        label = np.array([{"A": 1.0, "B": -1.0}.get(by_id[j.pair_id].preferred or "", 0.0) for j in rows])
        names, x = [*names, LABEL], np.column_stack([x, label]) if len(rows) else np.zeros((0, len(names) + 1))
    return names, x, y, rows


def _loglik(x: np.ndarray, y: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-vote log-likelihood of a no-intercept logistic model."""
    eta = x @ b
    return y * eta - np.logaddexp(0, eta)


def _cross_fitted(x: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int) -> np.ndarray:
    """Linear predictor for every row from fits that never saw its group (a pair, or a vote)."""
    keys = np.unique(groups)
    fold_of = dict(zip(keys, np.random.default_rng(seed).permutation(len(keys)) % FOLDS, strict=True))
    fold = np.array([fold_of[g] for g in groups])
    eta = np.zeros(len(y))
    for f in range(FOLDS):
        test = fold == f
        if test.any() and (~test).any():
            eta[test] = x[test] @ fit_logistic(x[~test], y[~test], l2=L2).coef
    return eta


def _test(p: float | None) -> float | None:
    """A p-value, or None where the test could not be made (it then counts in no correction)."""
    return None if p is None or np.isnan(p) else float(p)


def _binom(k: int, n: int) -> float | None:
    """Two-sided binomial p against a coin: agreeing less than chance is structure too."""
    return float(binomtest(k, n, 0.5).pvalue) if n else None


def _rate(result: Sequence[float], level: float) -> dict[str, Any]:
    """A rate with its Wilson interval and n (the one interval, ``intervals.rate_interval``)."""
    r = np.asarray(result, dtype=np.float64)
    return {"rate": float(r.mean()) if len(r) else None, "ci": rate_interval(r, level), "n": int(len(r))}


def _sign_test(factors: Sequence[str], x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """The factor whose sign the votes follow (or oppose) most surely: a two-sided binomial test
    per factor on the votes where it differs, Bonferroni over the factors. One factor is where a
    simple taste ("longer is better") shows with far more power than a many-factor LR test."""
    best: dict[str, Any] = {"factor": None, "agreement": None, "n": 0, "p_value": 1.0}
    for k, name in enumerate(factors):
        differs = x[:, k] != 0
        n = int(differs.sum())
        if not n:
            continue
        agree = int(np.sum((x[differs, k] > 0) == (y[differs] == 1)))
        p = min(1.0, float(binomtest(agree, n, 0.5).pvalue) * len(factors))
        if p < best["p_value"] or best["factor"] is None:
            best = {"factor": name, "agreement": agree / n, "n": n, "p_value": p}
    return best


def _vote_tests(x: np.ndarray, y: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """p-values of every test on the decisive votes, one column per vote vector in ``y`` (n ×
    draws): the score test of the taste model at coefficients 0 (row 0), then the two-sided
    binomial test of agreement with the sign of each reference column (a factor, the dataset's
    label, the others' majority; 0 = no side). Vote vectors are columns so that the products are
    (tests × n) @ (n × draws), which BLAS runs fast even on a busy machine."""
    centred = y - 0.5
    taste = np.ones(y.shape[1])
    if x.shape[1]:
        u, info = x.T @ centred, x.T @ x / 4  # the score and the information at β = 0
        taste = chi2.sf(np.sum(u * (np.linalg.pinv(info) @ u), axis=0), max(1, np.linalg.matrix_rank(info)))
    side = np.sign(refs)
    n = np.abs(side).sum(axis=0).astype(np.int64)
    agree = np.rint((n[:, None] + side.T @ (centred * 2)) / 2).astype(np.int64)  # votes on each reference's side
    out = np.empty((1 + refs.shape[1], y.shape[1]))
    out[0] = taste
    for k, m in enumerate(n):  # a table per reference: p of every possible count
        counts = np.arange(m + 1)
        table = np.minimum(1.0, 2 * binom.cdf(np.minimum(counts, m - counts), m, 0.5)) if m else np.ones(1)
        out[k + 1] = table[agree[k]]
    return out


def _joint_p(x: np.ndarray, y: np.ndarray, refs: np.ndarray, seed: int) -> float:
    """Family-wise p of the smallest vote test under the exact null of "coin flips": the share of
    simulated coin-flip vote vectors whose smallest p is at least as small (Westfall–Young min-p).
    Unlike Bonferroni it does not pay for tests that measure the same thing (length, the verbosity
    pole and the others' majority, for a length lover)."""
    observed = _vote_tests(x, y[:, None], refs).min()
    draws = np.random.default_rng(seed).integers(0, 2, size=(len(y), NULL_DRAWS)).astype(np.float64)
    return float((1 + np.sum(_vote_tests(x, draws, refs).min(axis=0) <= observed * (1 + 1e-9))) / (NULL_DRAWS + 1))


def _majority_side(votes: Mapping[str, str], name: str) -> float:
    """+1 / −1 when the other annotators on a pair have a clear majority for A / B, else 0."""
    ranked = Counter(v for a, v in votes.items() if a != name).most_common()
    if ranked and (len(ranked) == 1 or ranked[0][1] > ranked[1][1]):
        return 1.0 if ranked[0][0] == "A" else -1.0
    return 0.0


def _cluster(vectors: dict[str, np.ndarray], threshold: float) -> list[list[str]]:
    """Average-linkage agglomeration on cosine similarity, merging while the best pair of
    clusters has mean similarity ≥ ``threshold``; clusters sorted by size, then name."""
    names = sorted(vectors)
    unit = {a: v / n if (n := np.linalg.norm(v)) > 0 else v for a, v in vectors.items()}
    sim = {(a, b): float(unit[a] @ unit[b]) for a in names for b in names}
    clusters = [[a] for a in names]
    while len(clusters) > 1:
        best, pair = -np.inf, (0, 0)
        for i in range(len(clusters)):
            for k in range(i + 1, len(clusters)):
                s = float(np.mean([sim[a, b] for a in clusters[i] for b in clusters[k]]))
                if s > best:
                    best, pair = s, (i, k)
        if best < threshold:
            break
        i, k = pair
        clusters[i] = sorted(clusters[i] + clusters[k])
        del clusters[k]
    return sorted(clusters, key=lambda c: (-len(c), c[0]))


def _taste(row: dict[str, Any], name: str, factors: list[str], scale: np.ndarray, x: np.ndarray, y: np.ndarray,
           z: float) -> np.ndarray:
    """Fill ``taste``, ``fit`` and the taste tests of one annotator's row; return the scaled coefficients."""
    n = len(y)
    fit = fit_logistic(x, y, l2=L2)
    lr = float(2 * (_loglik(x, y, fit.coef).sum() - n * np.log(0.5)))
    row["taste"] = {f: {"coef": float(b / s), "low": float((b - z * se) / s), "high": float((b + z * se) / s), "scale": float(s)}
                    for f, b, se, s in zip(factors, fit.coef, fit.se, scale, strict=True)}
    cv_eta = _cross_fitted(x, y, np.arange(n), _seed(name))
    gain = y * cv_eta - np.logaddexp(0, cv_eta) - np.log(0.5)
    se = gain.std(ddof=1) / np.sqrt(n)
    row["fit"] = {"lr_statistic": lr, "df": len(factors), "p_value": float(chi2.sf(max(lr, 0.0), len(factors))),
                  "cv_gain_nats": float(gain.mean()), "cv_gain_ci": [float(gain.mean() - z * se), float(gain.mean() + z * se)],
                  "note": "cross-validated log-likelihood per vote of the own taste model minus a coin's",
                  "cv_p_value": float(norm.sf(gain.mean() / se)) if se > 0 else 1.0, "strongest_factor": _sign_test(factors, x, y)}
    return fit.coef


def annotator_analysis(pairs: Sequence[Pair], judgments: Sequence[Judgment], *, gold: Mapping[str, str] | None = None,
                       repeats: Sequence[Judgment] = (), level: float = LEVEL, alpha: float = ALPHA,
                       group_cosine: float = GROUP_COSINE, embed: Callable[[list[str]], np.ndarray] | None = None,
                       resamples: int | None = None) -> dict[str, Any]:
    """Taste, competence, noise flag and taste group of every annotator (plain data, JSON-friendly).

    ``repeats`` are second votes on pairs an annotator already judged (hidden repeats), for
    self-consistency; ``gold`` maps pair ids to "A"/"B"/"tie". Returns ``annotators`` (one row
    each), ``groups`` (name → members), ``factors`` and the method's settings. With ``embed``
    (texts → a model's features) each row also gets its PAL ``ideal_point`` (``resamples``
    bootstrap refits for the distances' intervals; the module's default when None).
    """
    gold = dict(gold or {})
    names, x_all, y_all, rows = _design(pairs, judgments)
    varying = np.flatnonzero(np.any(x_all != 0, axis=0)) if len(x_all) else np.zeros(0, dtype=int)
    factors = [names[i] for i in varying]
    scale = np.array([np.median(np.abs(c[c != 0])) for c in x_all[:, varying].T]) if len(x_all) else np.ones(0)
    xs = np.tanh(x_all[:, varying] / scale) if len(x_all) else np.zeros((0, len(varying)))
    who = np.array([j.annotator for j in rows])
    pair_of = np.array([j.pair_id for j in rows])
    z = z_value(level)
    everyone = sorted({j.annotator for j in judgments})
    left_out = Counter(j.annotator for j in judgments if _outcome(j) not in ("A", "B"))

    # Votes of everyone on each pair, for agreement with the others' majority.
    on_pair: dict[str, dict[str, str]] = defaultdict(dict)
    for j in rows:
        on_pair[j.pair_id][j.annotator] = _outcome(j)

    result: dict[str, dict[str, Any]] = {}
    vectors: dict[str, np.ndarray] = {}
    for name in everyone:
        mine = who == name
        x, y = xs[mine], y_all[mine]
        n = int(len(y))
        row: dict[str, Any] = {"annotator": name, "votes": n, "left_out": int(left_out[name]), "taste": {}, "tests": {}}
        row["fit"] = None
        if n >= MIN_VOTES and len(factors):
            vectors[name] = _taste(row, name, factors, scale, x, y, z)
        majority = np.array([_majority_side(on_pair[j.pair_id], name) for j in rows if j.annotator == name])
        _vote_evidence(row, factors, x, y, majority, level)
        _reference_tests(row, [j for j in judgments if j.annotator == name], gold, [r for r in repeats if r.annotator == name], level)
        _noise_verdict(row, alpha)
        result[name] = row

    _, first = np.unique(pair_of, return_index=True)  # each voted pair once: tastes compared where votes happen
    clusters = _cluster({a: xs[first] @ v for a, v in vectors.items() if not result[a]["noisy"]}, group_cosine)
    groups = {f"g{i + 1}": members for i, members in enumerate(clusters)}
    for g, members in groups.items():
        for a in members:
            result[a]["taste_group"] = g
    for a in everyone:
        result[a].setdefault("taste_group", None)

    _competence(result, groups, xs, y_all, who, pair_of, level)
    out = {"annotators": [result[a] for a in everyone], "groups": groups, "factors": factors, "level": level,
           "alpha": alpha, "group_cosine": group_cosine, "l2": L2,
           "model": "logit P(A wins) = sum_k coef_k * (factor_k(A) - factor_k(B)) per annotator, L2 on scaled factors"}
    if embed is not None:
        _add_ideal_points(out, pairs, judgments, embed, level, resamples)
    return out


def _vote_evidence(row: dict[str, Any], factors: list[str], x: np.ndarray, y: np.ndarray, majority: np.ndarray,
                   level: float) -> None:
    """The tests on the decisive votes themselves, joined into one (``tests["votes"]``, see
    ``_joint_p``), each raw p in ``vote_tests``; agreement with the others' majority and with the
    dataset's own label as rates."""
    refs = np.column_stack([x, majority]) if len(y) else np.zeros((0, len(factors) + 1))
    row["majority_agreement"] = _rate((np.sign(majority[majority != 0]) > 0) == (y[majority != 0] == 1), level)
    label = x[:, factors.index(LABEL)] if LABEL in factors else np.zeros(len(y))
    row[LABEL] = _rate((label[label != 0] > 0) == (y[label != 0] == 1), level)
    row["vote_tests"] = {}
    if np.any(refs != 0):
        row["vote_tests"] = dict(zip(["taste", *factors, "majority"], map(float, _vote_tests(x, y[:, None], refs)[:, 0]), strict=True))
        row["tests"]["votes"] = _joint_p(x, y, refs, _seed(row["annotator"]))


def _reference_tests(row: dict[str, Any], mine: Sequence[Judgment], gold: Mapping[str, str], repeats: Sequence[Judgment],
                     level: float) -> None:
    """One annotator's votes against gold and their own repeats (rate, interval, n and a test
    each), and the side shown first (``position``: reported, never a test of "not noisy", as it
    says nothing about the answers)."""
    graded = [float(_outcome(j) == gold[j.pair_id]) for j in mine if j.pair_id in gold and _outcome(j) in ("A", "B", "tie")]
    first = {j.pair_id: _outcome(j) for j in mine}
    again = [float(_outcome(r) == first[r.pair_id]) for r in repeats if r.pair_id in first and _outcome(r) != "skip"]
    for key, found in (("gold", graded), ("self_consistency", again)):
        row[key] = _rate(found, level)
        row["tests"][key] = _binom(int(sum(found)), len(found))
    # Only where both display orders occur is "the side shown first" apart from the canonical A/B.
    decisive = [j for j in mine if _outcome(j) in ("A", "B")]
    left = [float(_outcome(j) == j.displayed_order[0]) for j in decisive] if {j.displayed_order for j in decisive} == {"AB", "BA"} else []
    row["position"] = {**_rate(left, level), "p_value": _binom(int(sum(left)), len(left)),
                       "note": "share of decisive votes for the side shown first; tested only when both display orders occur"}


def _noise_verdict(row: dict[str, Any], alpha: float) -> None:
    """``noisy`` (no test significant after Bonferroni over the tests made), ``position_biased``
    and the ``evidence`` sentence that says both."""
    made = {k: v for k, v in row["tests"].items() if _test(v) is not None}
    row["tests"] = made
    row["noisy"] = not any(min(1.0, p * len(made)) < alpha for p in made.values())
    row["evidence"] = (f"{len(made)} test(s) ({', '.join(made) or 'none possible'}), smallest Bonferroni p = "
                       f"{min((min(1.0, p * len(made)) for p in made.values()), default=float('nan')):.3g}")
    if row["vote_tests"]:
        best = min(row["vote_tests"], key=row["vote_tests"].get)
        row["evidence"] += (f"; votes: strongest of {len(row['vote_tests'])} tests is {best} (raw p = {row['vote_tests'][best]:.2g}), "
                            f"{NULL_DRAWS} coin-flip simulations give p = {made['votes']:.2g}")
    row["position_biased"] = row["position"]["p_value"] is not None and row["position"]["p_value"] < alpha
    if row["position_biased"]:
        row["evidence"] += (f"; position bias: picked the side shown first in {row['position']['rate']:.0%} of "
                            f"{row['position']['n']} votes (p = {row['position']['p_value']:.2g}), which says nothing about the answers")


def _add_ideal_points(out: dict[str, Any], pairs: Sequence[Pair], judgments: Sequence[Judgment],
                      embed: Callable[[list[str]], np.ndarray], level: float, resamples: int | None) -> None:
    """Each row's ``ideal_point`` (None without a decisive vote) and the fit's summary as ``ideal_points``."""
    # torch and scikit-learn: only when a model is chosen (this module stays torch-free for `label annotators`).
    from workbench.preference.ideal_points import RESAMPLES, ideal_points

    found = ideal_points(pairs, judgments, embed, out["groups"], level=level,
                         resamples=RESAMPLES if resamples is None else resamples)
    for row in out["annotators"]:
        row["ideal_point"] = found["annotators"].get(row["annotator"])
    out["ideal_points"] = {k: v for k, v in found.items() if k != "annotators"}


def _competence(result: dict[str, dict[str, Any]], groups: dict[str, list[str]], xs: np.ndarray, y: np.ndarray,
                who: np.ndarray, pair_of: np.ndarray, level: float) -> None:
    """One-coin Dawid–Skene within each taste group (see the module docstring); fills
    ``consensus`` and ``competence`` of every row."""
    units = [members for members in groups.values()] + [[a] for a, r in result.items() if r["taste_group"] is None]
    for members in units:
        mask = np.isin(who, members)
        if not mask.any() or not xs.shape[1]:
            for a in members:
                result[a]["consensus"] = _rate([], level)
            continue
        x, yy, pid, by = xs[mask], y[mask], pair_of[mask], who[mask]
        key = pid if len(members) > 1 else np.arange(len(yy))  # alone: cross-fit by vote, as the own CV model
        prior = _cross_fitted(x, yy, key, _seed("|".join(members)))  # log-odds that A is the group's label, per row
        acc = dict.fromkeys(members, 0.75)
        expected: dict[str, np.ndarray] = {}
        for _ in range(DS_ROUNDS):
            votes: dict[str, list[tuple[str, float]]] = defaultdict(list)
            for a, p, v in zip(by, pid, yy, strict=True):
                votes[p].append((a, v))
            for a in members:
                mine = np.flatnonzero(by == a)
                agree = np.zeros(len(mine))
                for k, r in enumerate(mine):
                    eta = prior[r]
                    for other, v in votes[pid[r]]:
                        if other != a:
                            w = np.log(acc[other] / (1 - acc[other]))
                            eta += w if v == 1 else -w
                    p_a = 1 / (1 + np.exp(-eta))
                    agree[k] = p_a if yy[r] == 1 else 1 - p_a
                expected[a] = agree
            new = {a: float(np.clip(expected[a].mean(), 0.01, 0.99)) if len(expected[a]) else 0.5 for a in members}
            if max(abs(new[a] - acc[a]) for a in members) < 1e-6:
                acc = new
                break
            acc = new
        for a in members:
            result[a]["consensus"] = _rate(expected[a], level)
    for r in result.values():
        parts = [r[k] for k in ("consensus", "gold", "self_consistency") if r[k]["n"]]
        n = sum(p["n"] for p in parts)
        rate = sum(p["rate"] * p["n"] for p in parts) / n if n else None
        r["competence"] = rate
        r["competence_ci"] = rate_interval(np.full(n, rate), level) if n else None
        r["competence_from"] = [k for k in ("consensus", "gold", "self_consistency") if r[k]["n"]]


def session_annotators(labeling: VoteSource, session: str, *, level: float = LEVEL, model: str | None = None,
                       models: Any = None, resamples: int | None = None) -> dict[str, Any]:
    """``annotator_analysis`` of a session's votes that currently count, with its gold pairs.

    With ``models`` (a ``ModelService``: ``AppContext.model_service`` or one over the CLI's
    settings), ``model`` (or, when None, the session's policy model if it names one) embeds the
    answers for the PAL ideal points, its features read from and written to the activation cache
    under the service's settings; ``ideal_points["feature_model"]`` names it.

    Self-consistency reads the session's hidden repeats (``repeat_share``): each annotator's
    second vote on a pair, served again with its sides swapped."""
    info = labeling.session(session)
    name = model or (info.settings.policy_model if models is not None else None) or None
    embed = None
    if name:
        if models is None:
            raise WorkbenchError(f"Ideal points with model '{name}' need a model service to load it.",
                                 hint="Pass models=ctx.model_service (or ModelService(settings)).")
        # torch and scikit-learn: only when a model is chosen (this module stays torch-free for `label annotators`).
        from workbench.preference.ideal_points import service_embedder

        embed = service_embedder(models, name)
    found = annotator_analysis(labeling.pairs(session), labeling.judgments(session), gold=info.settings.gold, level=level,
                               repeats=labeling.repeats(session), embed=embed, resamples=resamples)
    if name:
        found["ideal_points"]["feature_model"] = name
    return {"session": session, **found}


def _ci_text(part: dict[str, Any]) -> str:
    """'rate [low, high] n=…' for a table cell, '—' without data."""
    if not part["n"]:
        return "—"
    lo, hi = part["ci"]
    return f"{part['rate']:.2f} [{lo:.2f}, {hi:.2f}] n={part['n']}"


def annotator_rows(analysis: dict[str, Any], *, top: int = 3) -> list[dict[str, str]]:
    """Display rows (one per annotator) for the statistics view and ``workbench label annotators``:
    group, noisy, competence and each component with interval and n, the strongest taste factors."""
    out = []
    for r in analysis["annotators"]:
        taste = sorted(r["taste"].items(), key=lambda kv: -abs(kv[1]["coef"]) * (kv[1]["low"] > 0 or kv[1]["high"] < 0))
        shown = [f"{f} {t['coef']:+.2f} [{t['low']:+.2f}, {t['high']:+.2f}]" for f, t in taste[:top] if t["low"] > 0 or t["high"] < 0]
        comp = "—" if r["competence"] is None else (f"{r['competence']:.2f} [{r['competence_ci'][0]:.2f}, "
                                                     f"{r['competence_ci'][1]:.2f}] ({'+'.join(r['competence_from'])})")
        out.append({"annotator": r["annotator"], "votes": str(r["votes"]), "taste_group": r["taste_group"] or "—",
                    "noisy": "yes" if r["noisy"] else "no", "competence": comp, "consensus": _ci_text(r["consensus"]),
                    "gold": _ci_text(r["gold"]), "self_consistency": _ci_text(r["self_consistency"]),
                    "taste (interval excludes 0)": "; ".join(shown) or "none", "evidence": r["evidence"]})
        if "ideal_point" in r:
            out[-1]["ideal point: nearest"] = _nearest_text(r["ideal_point"])
    return out


def _nearest_text(point: dict[str, Any] | None) -> str:
    """'other d [low, high] (B resamples)' for the annotator whose ideal point is nearest, '—' without one."""
    if not point or point["nearest"] is None:
        return "—"
    d = point["distances"][point["nearest"]]
    return f"{point['nearest']} {d['distance']:.2f} [{d['ci'][0]:.2f}, {d['ci'][1]:.2f}] ({d['resamples']} resamples)"


def group_verdicts(labeling: VoteSource, session: str, candidate: str, *, analysis: dict[str, Any] | None = None,
                   level: float = LEVEL) -> dict[str, Any]:
    """Did ``candidate`` win, for whom: ``did_it_win`` on the votes of each taste group (and of
    the noisy annotators apart; a group whose votes cannot answer gets ``{"error": …}``), and
    over everyone with votes weighted by competence (``competence_weighted``, its rule stated)."""
    analysis = analysis or session_annotators(labeling, session, level=level)
    pairs, judgments = labeling.pairs(session), labeling.judgments(session)
    members = dict(analysis["groups"])
    noisy = [r["annotator"] for r in analysis["annotators"] if r["noisy"]]
    if noisy:
        members["noisy"] = noisy
    out: dict[str, Any] = {}
    for group, names in members.items():
        try:
            won = did_it_win(pairs, [j for j in judgments if j.annotator in names], candidate, level=level)
            out[group] = {"annotators": names, "n": won["n"], "win_rate": won["win_rate"], "win_rate_ci": won["win_rate_ci"],
                          "verdict": won["verdict"], "lc_win_rate": won["lc_win_rate"], "lc_win_rate_ci": won["lc_win_rate_ci"]}
        except WorkbenchError as err:
            out[group] = {"annotators": names, "error": str(err)}
    weighted = competence_weighted_win_rate(pairs, judgments, candidate, analysis, level=level)
    try:
        rated: dict[str, Any] = competence_weighted_bradley_terry(pairs, judgments, analysis, level=level)
    except WorkbenchError as err:
        rated = {"error": str(err)}
    return {"candidate": candidate, "groups": out, "competence_weighted": weighted, "competence_weighted_bradley_terry": rated}


def competence_weighted_win_rate(pairs: Sequence[Pair], judgments: Sequence[Judgment], candidate: str,
                                 analysis: dict[str, Any], *, level: float = LEVEL) -> dict[str, Any]:
    """The candidate's win rate with each vote weighted by its annotator's competence c, as
    w = max(0, 2c − 1) (the share of a one-coin voter's votes that carry signal: a coin gets 0).
    The interval is the Wilson interval at Kish's effective n = (Σw)² / Σw², so down-weighting
    never claims more certainty than the votes hold. ``weighting`` states the rule used."""
    comp = {r["annotator"]: r["competence"] for r in analysis["annotators"]}
    results, weights = [], []
    for name in sorted({j.annotator for j in judgments}):
        d = duels(pairs, [j for j in judgments if j.annotator == name], candidate)
        w = max(0.0, 2 * comp.get(name, 0.5) - 1) if comp.get(name) is not None else 0.0
        results += list(d.result)
        weights += [w] * len(d)
    r, w = np.asarray(results), np.asarray(weights)
    total = float(w.sum())
    if not len(r) or total <= 0:
        return {"candidate": candidate, "n": int(len(r)), "rate": None, "ci": None, "effective_n": 0.0,
                "weighting": "competence (w = max(0, 2c - 1)); no vote has weight above 0", "decided": False}
    rate, n_eff = float(w @ r / total), total**2 / float(w @ w)
    lo, hi = wilson_interval(rate * n_eff, n_eff, level)
    ci = [float(lo), float(hi)]
    return {"candidate": candidate, "n": int(len(r)), "rate": rate, "ci": ci, "effective_n": n_eff, "decided": decided(ci),
            "weights": {a: max(0.0, 2 * c - 1) if c is not None else 0.0 for a, c in comp.items()},
            "weighting": "competence (w = max(0, 2c - 1) per annotator; Wilson interval at Kish's effective n)"}


def competence_weighted_bradley_terry(pairs: Sequence[Pair], judgments: Sequence[Judgment], analysis: dict[str, Any], *,
                                      ties: str = "davidson", level: float = LEVEL) -> dict[str, Any]:
    """Bradley–Terry of the sources with each vote's log-likelihood weighted by its annotator's
    w = max(0, 2c − 1) (the same rule as the weighted win rate), stated in ``weighting``."""
    every = source_comparisons(pairs, judgments)
    weights = {r["annotator"]: max(0.0, 2 * r["competence"] - 1) if r["competence"] is not None else 0.0
               for r in analysis["annotators"]}
    a, b, result, w = [], [], [], []
    for name in sorted({j.annotator for j in judgments}):
        mine = source_comparisons(pairs, [j for j in judgments if j.annotator == name])
        where = np.array([every.items.index(s) for s in mine.items], dtype=np.int64)
        if len(mine):
            a.append(where[mine.a])
            b.append(where[mine.b])
            result.append(mine.result)
            w.append(np.full(len(mine), weights.get(name, 0.0)))
    if not a:
        raise DataError("No vote compares two sources, so there is nothing to rate.",
                        hint="Pairs need source metadata (source_a/source_b) and A/B/tie votes.")
    c = Comparisons(every.items, np.concatenate(a), np.concatenate(b), np.concatenate(result), np.concatenate(w))
    keep = c.w > 0
    if len({*c.a[keep], *c.b[keep]}) < 2:
        raise DataError("No annotator with competence above a coin's voted between two sources.",
                        hint="Weighted ratings need votes from annotators whose competence exceeds 0.5.")
    fit = fit_bradley_terry(c.subset(keep), ties=ties, ci=level)
    return {"ratings": fit.table(), "top_gap": fit.top_gap, "votes": int(keep.sum()), "weights": weights,
            "weighting": "competence (each vote's log-likelihood times w = max(0, 2c - 1) of its annotator; "
                         "Laplace interval of the weighted fit)"}
