"""Votes spent where the model is unsure: the ``model-uncertain`` session order (issue 25 §2).

A reward head on the frozen features of the session's model (mean-pooled residual stream of
each response at one layer, ``reward_heads.featurize``, read through the content-hash
activation cache) is refitted from the session's votes every ``refit_every`` decisive (A/B)
votes, in a background thread: the vote → next pair round trip never waits for a fit. The queue
is then ordered by what one vote would do for the *whole session* (``batch_order``):

- first the pair whose vote would most lower the head's **uncertainty about the pairs still
  open**: the expected reduction of their posterior logit variance under the head's Laplace
  posterior (MacKay's ALC, Cohn et al. 1996). It is high where the head is unsure *and* many open
  pairs lie along the same direction; low where the head is sure, and low for a pair the head is
  sure is a coin flip (a near tie teaches little about any other pair). Ranking by BALD, the
  information one vote gives about the head's own weights, as before 2026-12-07, needed more
  votes (benchmarks/README.md, run 12);
- and, once ``annotator_analysis`` finds two or more taste groups with enough votes each, every
  other pick is the pair the groups' own heads **disagree** on most: the Jensen–Shannon
  divergence of their predicted P(A wins), in bits. The groups are re-estimated once the votes
  grew by a quarter since the last estimate (``annotator_analysis`` is the slow part of a
  refit); between, the refit reuses them. The analysis runs in a child process at a lower CPU
  priority (nice +10): it is pure-Python work that would otherwise hold the interpreter lock the
  serving threads need (measured: a round trip's p99 doubled while it ran), and on a busy
  machine its CPU seconds would still crowd them.

The k votes until the next refit are served from one ranking, so its first 2k places are picked
greedily, each pick taken into the head's posterior as if answered before the next is chosen:
they spread over the directions the head is unsure of instead of being near-copies of one.

The head works in the top ``COMPONENTS`` principal components of the standardised response
features (computed once per session from all its responses, no votes needed): a few dozen
votes cannot inform 500+ weights, and the Laplace covariance is then a small matrix. Its prior
gives a pair's logit a standard deviation of ``PRIOR_LOGIT_SD`` on average. The evaluation head
a researcher trains afterwards (``train_reward_model_from_session``) is unaffected: this head
only orders the queue.

Everything else stays as in the other orders: coverage first (fewest votes first), then the
head's order; the reservation and overlap rules of ``selection.reserve`` apply unchanged. Until the
first head exists (fewer than ``refit_every`` decisive votes, or the first fit still running)
pairs are served in the ``active`` order, and ``status`` says so.
"""
from __future__ import annotations

import hashlib
import logging
import math
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from workbench.activations.cache import ActivationCache
from workbench.data.types import Judgment, Pair
from workbench.preference.intervals import wilson_interval

MODEL_UNCERTAIN = "model-uncertain"
DEFAULT_REFIT_EVERY = 8
COMPONENTS = 32
PRIOR_LOGIT_SD = 2.0
NEWTON_STEPS = 50
GROUPS_GROWTH = 1.25  # taste groups are re-estimated once the votes grew by a quarter (annotator_analysis is a refit's slow part)
log = logging.getLogger(__name__)


class PairFeatures(Protocol):
    """Features of every pair's two responses: ``(features of A [n, d], of B [n, d], description)``."""

    def __call__(self, model: str, layer: int, pairs: Sequence[Pair]) -> tuple[np.ndarray, np.ndarray, str]: ...


class ModelFeatures:
    """``reward_heads.featurize`` on a catalog model, through the activation cache.

    ``get_model`` loads a model by catalog name or path (the app passes its model service's
    ``get``, so the model is loaded once per process); by default a ``ModelService`` over
    ``settings`` is created on first use. ``layer`` 0 means the middle layer.
    """

    def __init__(self, settings: Any = None, *, get_model: Callable[[str], Any] | None = None, cache: Any = None,
                 batch_size: int = 8) -> None:
        self.settings = settings
        self._get_model = get_model
        self.cache = cache
        self.batch_size = batch_size
        self._lock = threading.Lock()

    def get_model(self, model: str) -> Any:
        with self._lock:
            if self._get_model is None:
                from workbench.models.service import ModelService  # torch: only once a head is fitted

                self._get_model = ModelService(self.settings).get
            if self.cache is None and self.settings is not None:
                self.cache = ActivationCache(self.settings.cache_dir)
        return self._get_model(model)

    def __call__(self, model: str, layer: int, pairs: Sequence[Pair]) -> tuple[np.ndarray, np.ndarray, str]:
        from workbench.preference.reward_heads import featurize  # torch: only in the background refit

        lm = self.get_model(model)
        layer = layer or max(1, lm.n_layers // 2)
        n = len(pairs)
        feats = featurize(lm, [p.prompt for p in pairs] * 2, [p.response_a for p in pairs] + [p.response_b for p in pairs],
                          layer, cache=self.cache, batch_size=self.batch_size)
        return feats[:n], feats[n:], f"{lm.name}, layer {layer}"


# -- the head ------------------------------------------------------------------------------

def project(features_a: np.ndarray, features_b: np.ndarray, components: int = COMPONENTS) -> np.ndarray:
    """Per pair, A − B in the top principal components of the standardised response features
    (both responses of every pair pooled; no votes are used)."""
    a, b = np.asarray(features_a, dtype=np.float64), np.asarray(features_b, dtype=np.float64)
    both = np.concatenate([a, b])
    mean, scale = both.mean(0), both.std(0) + 1e-6
    z = (both - mean) / scale
    k = max(1, min(components, z.shape[1], max(1, z.shape[0] - 1)))
    values, vectors = np.linalg.eigh(z.T @ z / max(1, len(z) - 1))
    top = vectors[:, np.argsort(values)[::-1][:k]]
    return ((a - mean) / scale - (b - mean) / scale) @ top


@dataclass
class LaplaceHead:
    """Logistic P(A wins) = σ(w·Δ) with no intercept: MAP weights and their Laplace covariance."""

    w: np.ndarray
    cov: np.ndarray
    votes: int

    def predict(self, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean logit and its posterior variance per row of ``delta``."""
        return delta @ self.w, np.sum((delta @ self.cov) * delta, axis=1)  # BLAS, off the interpreter lock (einsum is not)


def prior_precision(delta: np.ndarray, logit_sd: float = PRIOR_LOGIT_SD) -> float:
    """The weight prior's precision that gives a pair's logit a prior sd of ``logit_sd`` on average."""
    return float(max(np.mean(np.sum(delta**2, axis=1)), 1e-12) / logit_sd**2)


def fit_head(x: np.ndarray, a_wins: np.ndarray, l2: float) -> LaplaceHead:
    """Newton's method on the L2-penalised logistic log-likelihood (labels ±1 on Δ = A − B)."""
    y = np.where(np.asarray(a_wins, dtype=bool), 1.0, -1.0)
    d = x.shape[1]
    w = np.zeros(d)
    eye = np.eye(d) * l2
    for _ in range(NEWTON_STEPS):
        m = y * (x @ w)
        s = 1 / (1 + np.exp(m))  # σ(−m)
        grad = -(x.T @ (y * s)) + l2 * w
        hess = (x.T * (s * (1 - s))) @ x + eye
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.max(np.abs(step))) < 1e-8:
            break
    p = 1 / (1 + np.exp(-(x @ w)))
    hess = (x.T * (p * (1 - p))) @ x + eye
    return LaplaceHead(w, np.linalg.inv(hess), int(len(y)))


def _entropy_bits(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def _probit(mu: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A logistic logit N(mu, var) as a probit one (σ(f) ≈ Φ(f·√(π/8)))."""
    k = math.pi / 8
    return mu * math.sqrt(k), var * k


def predictive(mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    """P(A wins) averaged over the posterior (probit approximation)."""
    from scipy.special import ndtr  # sessions import this module, and `label sessions` loads no scipy

    m, v = _probit(mu, var)
    return ndtr(m / np.sqrt(1 + v))


def disagreement(probabilities: Sequence[np.ndarray]) -> np.ndarray:
    """Jensen–Shannon divergence (bits) of several heads' P(A wins), equal weights."""
    p = np.stack(probabilities)
    return np.clip(_entropy_bits(p.mean(0)) - _entropy_bits(p).mean(0), 0.0, 1.0)


def decisive_votes(judgments: Sequence[Judgment]) -> list[tuple[str, str, bool]]:
    """(pair id, annotator, A won) of every A/B vote; ties, both-bad and skips carry no direction."""
    out = []
    for j in judgments:
        outcome = str(getattr(j.outcome, "value", j.outcome))
        if outcome in ("A", "B"):
            out.append((j.pair_id, j.annotator, outcome == "A"))
    return out


def taste_groups(pairs: Sequence[Pair], judgments: Sequence[Judgment], min_votes: int) -> dict[str, list[str]]:
    """``annotator_analysis``'s taste groups whose members cast at least ``min_votes`` decisive votes
    together ({} with fewer than two such groups, or fewer than two annotators to group)."""
    per_annotator: dict[str, int] = {}
    for _, who, _ in decisive_votes(judgments):
        per_annotator[who] = per_annotator.get(who, 0) + 1
    from workbench.preference.annotators import MIN_VOTES, annotator_analysis  # imports sessions: only when refitting

    if sum(n >= MIN_VOTES for n in per_annotator.values()) < 2:
        return {}
    groups = annotator_analysis(pairs, judgments)["groups"]
    enough = {g: members for g, members in groups.items() if sum(per_annotator.get(a, 0) for a in members) >= min_votes}
    return enough if len(enough) >= 2 else {}


@dataclass
class Head:
    """The latest finished fit of one session: the queue order it implies, and what it rests on."""

    version: int
    votes: int  # decisive votes it was fitted on
    fitted_at: float
    seconds: float
    features: str
    order: dict[str, int]  # pair id -> place (0: ask first)
    groups: dict[str, list[str]] = field(default_factory=dict)
    weights: np.ndarray | None = None  # the head on every vote, in the session's projected features
    seen: frozenset[tuple[str, str]] = frozenset()  # (pair, annotator) of the votes it was fitted on
    fit_correct: int = 0  # of its own ``votes``, how many it predicts
    heldout: tuple[int, int] = (0, 0)  # (right, n): each earlier head on the votes that came in after it
    basis: str = ""  # digest of the session's pairs the projection was computed from (weights live in it)


def accuracy(correct: int, n: int) -> dict[str, Any] | None:
    """A share with its Wilson interval and n (None without votes)."""
    if n <= 0:
        return None
    lo, hi = wilson_interval(correct, n)
    return {"rate": correct / n, "ci": [float(lo), float(hi)], "n": n}


def doing(head: Head | None, n_decisive: int, refit_every: int, running: int | None, error: str | None) -> str:
    """What the order does now, in a few words (the statistics view's first line about it)."""
    if head is None:
        if error:
            return f"refit failed: {error}; serving in the active order"
        if running is not None:
            return f"fitting the first head on {running} votes; serving in the active order meanwhile"
        if n_decisive < refit_every:
            return (f"waiting for {refit_every - n_decisive} more decisive votes before the first refit "
                    f"({n_decisive} of {refit_every}); serving in the active order")
        return "no head yet; serving in the active order"
    what = "ranking by expected uncertainty reduction" + (f" and the disagreement of taste groups {', '.join(sorted(head.groups))}" if head.groups else "")
    if running is not None:
        what += f"; refitting on {running} votes"
    return what + (f"; the last refit failed: {error}" if error else "")


def fit_heads(ids: Sequence[str], delta: np.ndarray, votes: Sequence[tuple[str, str, bool]],
              groups: dict[str, list[str]] | None = None) -> tuple[LaplaceHead, np.ndarray]:
    """The head on every vote, and per pair the taste groups' disagreement in bits (each group's
    own head on its members' votes; zeros without two or more ``groups``)."""
    row = {pid: i for i, pid in enumerate(ids)}
    l2 = prior_precision(delta)
    used = [(row[p], who, a) for p, who, a in votes if p in row]
    idx = np.array([r for r, _, _ in used], dtype=np.int64)
    wins = np.array([a for _, _, a in used], dtype=bool)
    head = fit_head(delta[idx], wins, l2)
    split = np.zeros(len(delta))
    if groups and len(groups) >= 2:
        probs = []
        for members in groups.values():
            mine = np.array([who in members for _, who, _ in used], dtype=bool)
            probs.append(predictive(*fit_head(delta[idx[mine]], wins[mine], l2).predict(delta)))
        split = disagreement(probs)
    return head, split


def track_accuracy(previous: Head | None, ids: Sequence[str], delta: np.ndarray, votes: Sequence[tuple[str, str, bool]],
                   w: np.ndarray, basis: str) -> tuple[int, tuple[int, int]]:
    """The new head's hits on its own votes, and the held-out tally carried forward: the previous
    head's hits on the votes it had not seen (each vote is predicted once, by the head before it,
    so the tally is an honest out-of-sample accuracy of the heads the order used). When the
    session's pairs changed (a dataset replaced), the projection ``basis`` did too and the previous
    weights mean nothing in the new one: the tally starts again."""
    row = {pid: i for i, pid in enumerate(ids)}
    known = [(row[p], who, a) for p, who, a in votes if p in row]
    x = delta[[r for r, _, _ in known]] if known else np.zeros((0, delta.shape[1]))
    wins = np.array([a for _, _, a in known], dtype=bool)
    fit_correct = int(np.sum((x @ w > 0) == wins))
    if previous is None or previous.weights is None or previous.basis != basis or previous.weights.shape != w.shape:
        return fit_correct, (0, 0)
    new = np.array([(ids[r], who) not in previous.seen for r, who, _ in known], dtype=bool)
    right = int(np.sum((x[new] @ previous.weights > 0) == wins[new]))
    return fit_correct, (previous.heldout[0] + right, previous.heldout[1] + int(new.sum()))


def background_priority() -> None:
    """Run the taste-group process at a lower CPU priority (nice +10), so that on a busy machine its
    seconds of work yield the cores to the threads serving votes (measured: with the child at
    normal priority a round trip's p99 rose while it ran, though it holds none of their locks)."""
    if hasattr(os, "nice"):  # POSIX; elsewhere the child keeps its priority
        try:
            os.nice(10)
        except OSError as err:
            log.warning("model-uncertain: the taste-group process keeps its priority (%s)", err)


def expected_reduction(delta: np.ndarray, cov: np.ndarray, weight: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Per row i: how much one vote on pair i would lower the head's posterior logit variance,
    summed over the target pairs whose scatter matrix is ``spread`` (Σ_j x_j x_jᵀ; Cohn et al.
    1996, MacKay 1992's ALC): a rank-one Laplace update Σ' = Σ − w Σxxᵀ Σ / (1 + w xᵀΣx) lowers
    target j's variance by w (x_jᵀ Σ x)² / (1 + w xᵀΣx)."""
    cx = delta @ cov  # row i: (Σ x_i)ᵀ; matmuls run in BLAS, off the interpreter lock
    return weight * np.sum((cx @ spread) * cx, axis=1) / (1 + weight * np.sum(cx * delta, axis=1))


def batch_order(delta: np.ndarray, head: LaplaceHead, floor: np.ndarray, batch: int, done: np.ndarray | None = None) -> np.ndarray:
    """Row indices, ask first first. The first ``batch`` are picked greedily by
    ``expected_reduction`` over the pairs still open (the vote that most lowers the head's
    uncertainty about the pairs still to be voted on), each pick taken into the posterior as if
    answered before the next is chosen (the rank-one update, weighted by p(1 − p) at the head's
    mean; the mean is left alone, as the outcome is unknown), so the k votes until the next
    refit spread over what the head is unsure of. Measured against picking by BALD alone on 40
    simulated sessions (benchmarks/README.md, run 12): a smaller shortfall area in 32 of them.
    Where ``floor`` (the taste groups' disagreement, which no fantasy changes) is positive
    somewhere, every other pick is the open pair the groups disagree on most. Then the rest by
    their expected reduction. ``done`` marks pairs that have all their votes (never picked, and
    last: the head already took them in)."""
    mu = head.predict(delta)[0]
    weight = 1 / (1 + np.exp(-mu)) * (1 / (1 + np.exp(mu)))  # σ'(mu): the Fisher weight of one vote
    cov = head.cov.copy()
    taken = np.zeros(len(delta), dtype=bool) if done is None else np.asarray(done, dtype=bool).copy()
    open_rows = delta[~taken]
    spread = open_rows.T @ open_rows  # the targets stay the pairs open at the refit: computed once
    groups = bool(np.any(floor > 0))
    picks: list[int] = []
    for k in range(min(batch, int(np.sum(~taken)))):
        score = floor if groups and k % 2 else expected_reduction(delta, cov, weight, spread)
        i = int(np.argmax(np.where(taken, -np.inf, score)))
        picks.append(i)
        taken[i] = True
        cx = cov @ delta[i]
        cov -= weight[i] / (1 + weight[i] * float(delta[i] @ cx)) * np.outer(cx, cx)
    score = expected_reduction(delta, cov, weight, spread)
    rest = np.flatnonzero(~taken)
    closed = np.setdiff1d(np.flatnonzero(taken), picks)
    by_score = [r[np.argsort(-np.round(score[r], 12), kind="stable")] for r in (rest, closed)]
    return np.concatenate([np.array(picks, dtype=np.int64), *by_score])


class UncertainOrder:
    """Per-process reward heads of ``model-uncertain`` sessions, refitted in one background thread.

    ``observe`` is called on the serving path with the session's current votes: it returns the
    latest finished head at once (None before the first) and, when ``refit_every`` more decisive
    votes than the newest head (or the fit running) have come in, queues a refit. The refit reads
    its own snapshot through ``load`` and never holds the store's write lock.
    """

    def __init__(self, features: PairFeatures | None = None, *, default: Callable[[], PairFeatures] | None = None,
                 analysis_process: bool = True) -> None:
        """``features`` gives the pairs' response features; without it ``default()`` builds the
        source on the first fit (LabelingStore passes a ``ModelFeatures`` over its home).
        ``analysis_process``: find taste groups in a child process (False: in the refit thread)."""
        self._features = features
        self._default = default
        self._analysis_process = analysis_process
        self._pool: Any = None
        self._lock = threading.Lock()
        self._heads: dict[int, Head] = {}
        self._asked: dict[int, int] = {}  # session -> decisive votes the newest queued/finished fit uses
        self._running: dict[int, int] = {}  # session -> decisive votes of the fit in flight
        self._errors: dict[int, str] = {}
        self._projected: dict[tuple[int, str, int, str], tuple[list[str], np.ndarray, str]] = {}
        self._groups: dict[int, tuple[int, dict[str, list[str]]]] = {}  # session -> (votes they were found on, groups)
        self._jobs: queue.Queue = queue.Queue()
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self._worker: threading.Thread | None = None

    @property
    def features(self) -> PairFeatures:
        if self._features is None:
            if self._default is None:
                raise RuntimeError("No feature source: give LabelingStore(store, features=...).")
            self._features = self._default()
        return self._features

    def head(self, sid: int) -> Head | None:
        with self._lock:
            return self._heads.get(sid)

    def observe(self, sid: int, n_decisive: int, refit_every: int, load: Callable[[], tuple[Any, list[Pair], list[Judgment]]]) -> Head | None:
        """The latest head of session ``sid``; queue a refit when ``refit_every`` more decisive votes came in."""
        with self._lock:
            head = self._heads.get(sid)
            asked = self._asked.get(sid, 0)
            if n_decisive >= refit_every and n_decisive - asked >= refit_every and sid not in self._running:
                self._asked[sid] = n_decisive
                self._running[sid] = n_decisive
                self._pending += 1
                self._jobs.put((sid, load))
                if self._worker is None or not self._worker.is_alive():
                    self._worker = threading.Thread(target=self._work, name="model-uncertain-refit", daemon=True)
                    self._worker.start()
            return head

    def status(self, sid: int, n_decisive: int, refit_every: int) -> dict[str, Any]:
        """What the order rests on now, in words and figures (the session's progress shows it)."""
        with self._lock:
            head, running, error = self._heads.get(sid), self._running.get(sid), self._errors.get(sid)
        out: dict[str, Any] = {"order": MODEL_UNCERTAIN, "decisive_votes": n_decisive, "refit_every": refit_every,
                               "head_votes": head.votes if head else None, "head_version": head.version if head else None,
                               "refitting": running is not None, "groups": sorted(head.groups) if head else [],
                               "error": error, "refits": head.version if head else 0,
                               "votes_since_refit": n_decisive - (head.votes if head else 0),
                               "features": head.features if head else None,
                               "self_accuracy": accuracy(head.fit_correct, head.votes) if head else None,
                               "heldout_accuracy": accuracy(*head.heldout) if head else None,
                               "doing": doing(head, n_decisive, refit_every, running, error)}
        if head is None:
            if n_decisive < refit_every:
                note = (f"No reward head yet: {n_decisive} of the {refit_every} decisive (A/B) votes the first fit needs; "
                        "pairs are served in the active (Bradley–Terry variance) order meanwhile.")
            elif running is not None:
                note = (f"The first reward head is being fitted on {running} votes (features of every pair are computed "
                        "on the first fit); pairs are served in the active order until it is ready.")
            else:
                note = "No reward head yet; pairs are served in the active order until the next fit."
        else:
            groups = f", and the disagreement of taste groups {', '.join(sorted(head.groups))}" if head.groups else ""
            note = (f"Pairs are served by the uncertainty of a reward head fitted on {head.votes} of {n_decisive} decisive votes "
                    f"({head.features}){groups}; refitted every {refit_every} votes"
                    f"{' (a refit is running)' if running is not None else ''}.")
        if error:
            note += f" The last fit failed: {error}"
        out["note"] = note
        return out

    @property
    def busy(self) -> bool:
        """Whether a refit is queued or running now."""
        with self._lock:
            return self._pending > 0

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no refit is queued or running (tests and benchmarks pace votes with it)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    # -- the background side -----------------------------------------------------------------

    def _work(self) -> None:
        while True:
            sid, load = self._jobs.get()
            try:
                self._refit(sid, load)
            except Exception as err:  # a failed fit must not stop later ones, nor serving
                log.warning("model-uncertain refit of session %s failed: %s", sid, err, exc_info=True)
                with self._lock:
                    self._errors[sid] = f"{type(err).__name__}: {err}"
            finally:
                with self._idle:
                    self._running.pop(sid, None)
                    self._pending -= 1
                    self._idle.notify_all()

    def _taste_groups(self, pairs: list[Pair], judgments: list[Judgment], min_votes: int) -> dict[str, list[str]]:
        """``taste_groups`` in the child process (started on first use; in this thread if none can start)."""
        from workbench.preference.annotators import MIN_VOTES  # scipy: only a refit, off the serving path

        per_annotator: dict[str, int] = {}
        for _, who, _ in decisive_votes(judgments):
            per_annotator[who] = per_annotator.get(who, 0) + 1
        if sum(n >= MIN_VOTES for n in per_annotator.values()) < 2:  # nothing to group: no process needed
            return {}
        if self._analysis_process and self._pool is None:
            try:
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=background_priority)
            except (OSError, ImportError, ValueError) as err:
                log.warning("model-uncertain: taste groups run in the refit thread (no child process: %s)", err)
                self._analysis_process = False
        if self._pool is not None:
            try:
                return self._pool.submit(taste_groups, pairs, judgments, min_votes).result()
            except BrokenProcessPool as err:  # the child died (killed, out of memory): fall back for good
                log.warning("model-uncertain: the taste-group process failed (%s); running in the refit thread", err)
                self._pool, self._analysis_process = None, False
        return taste_groups(pairs, judgments, min_votes)

    def close(self) -> None:
        """Stop the taste-group process, if one was started (it also ends with this process)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _delta(self, sid: int, settings: Any, pairs: list[Pair]) -> tuple[list[str], np.ndarray, str, str]:
        """The pairs' ids, their projected A − B, the features' description and the basis's key."""
        ids = [p.id for p in pairs]
        # The texts too: a dataset replaced by one with the same ids and new answers has other features.
        digest = hashlib.sha256("\0".join(f"{p.id}\1{p.prompt}\1{p.response_a}\1{p.response_b}" for p in pairs).encode()).hexdigest()
        key = (sid, settings.uncertainty_model or settings.policy_model, int(settings.uncertainty_layer), digest)
        cached = self._projected.get(key)
        if cached is None:
            fa, fb, described = self.features(key[1], key[2], pairs)
            cached = self._projected[key] = (ids, project(fa, fb), described)
        return (*cached, "/".join(map(str, key[1:])))

    def _refit(self, sid: int, load: Callable[[], tuple[Any, list[Pair], list[Judgment]]]) -> None:
        t0 = time.perf_counter()
        settings, pairs, judgments = load()
        ids, delta, described, basis = self._delta(sid, settings, pairs)
        votes = decisive_votes(judgments)
        found_on, groups = self._groups.get(sid, (0, {}))
        if not found_on or len(votes) >= GROUPS_GROWTH * found_on:
            groups = self._taste_groups(pairs, judgments, settings.refit_every)
            self._groups[sid] = (len(votes), groups)
        fitted, split = fit_heads(ids, delta, votes, groups)
        # The next refit comes after k more votes; twice k covers the pairs annotators hold meanwhile.
        counted: dict[str, int] = {}
        for j in judgments:
            if str(getattr(j.outcome, "value", j.outcome)) != "skip":
                counted[j.pair_id] = counted.get(j.pair_id, 0) + 1
        done = np.array([counted.get(pid, 0) >= settings.overlap for pid in ids], dtype=bool)
        ranked = batch_order(delta, fitted, split, 2 * settings.refit_every, done).tolist()
        fit_correct, heldout = track_accuracy(self.head(sid), ids, delta, votes, fitted.w, basis)
        with self._lock:
            version = (self._heads[sid].version + 1) if sid in self._heads else 1
            self._heads[sid] = Head(version=version, votes=len(votes), fitted_at=time.time(), seconds=time.perf_counter() - t0,
                                    features=described, order={ids[i]: place for place, i in enumerate(ranked)},
                                    groups=groups,
                                    weights=fitted.w, seen=frozenset((p, who) for p, who, _ in votes),
                                    fit_correct=fit_correct, heldout=heldout, basis=basis)
            self._asked[sid] = max(self._asked.get(sid, 0), len(votes))
            self._errors.pop(sid, None)

