"""Votes saved by the model-uncertain order (issue 25 §2), and its vote → next pair round trip.

    .venv/bin/python benchmarks/active.py [--seeds 5] [--annotators 4] [--beta 2] [--check-every 16]
                                          [--prompts 60] [--test-prompts 15] [--paced 20] [--paced-votes 30]
                                          [--random-draws 5] [--orders random,active,model-uncertain]

1. **Votes needed.** Real pairs: the shipped demo dataset's 480 responses (60 prompts, 8 answers
   each, written by the demo model under 8 system prompts), every two answers to one prompt
   forming a pair (28 per prompt, 1,680 pairs; sides drawn once with a fixed seed, each answer's
   system prompt ("pole") kept as its source, so the ``active`` order's Bradley–Terry prior has
   sources to rate). Per seed, ``--prompts`` prompts are drawn, ``--test-prompts`` of them held
   out (their pairs, with those of the prompts not drawn, are the test set) and the rest form
   the session's pool. Simulated annotators share one **hidden preference**: a utility u = w·f, linear in features f of each
   answer with unit-norm random weights drawn per seed (see ``--preference`` below), and a vote
   for A with probability σ(β (u_A − u_B)) (``--beta``); each pair's vote is drawn once per
   seed, so every order sees the same labels. ``--annotators`` of them vote in turn through the real serving
   path (``LabelingStore.next_item`` / ``vote`` on a SQLite store, overlap 1) until every pool
   pair has its vote, in the ``random``, ``active`` (Bradley–Terry variance) and
   ``model-uncertain`` orders. Between votes the benchmark waits for a refit in flight to
   finish (annotators take seconds per pair, a refit here takes milliseconds), so a run does not
   depend on thread timing.

   At checkpoints (every ``--check-every`` votes up to 256, twice that up to 768, four times
   beyond, and at the end) a reward head is fitted on the votes so far on the standardised
   mean-pooled residual stream of the demo model at the middle layer (A − B, no intercept), and
   its accuracy on the held-out pairs is measured against the hidden preference (the sign of
   u_A − u_B). The head (``--eval-head``) is by default ``ridge-loo``: ridge regression of the
   vote's sign (``fit_ridge_head``'s model), its L2 chosen on the votes so far by exact
   leave-one-out from a grid; ``bt`` is ``fit_bt_head``'s objective with its fixed L2 = 1 (solved
   by damped Newton with sklearn's stopping rule, checked against ``fit_bt_head`` once per run),
   whose held-out accuracy here *falls* as votes are added past a few dozen (under-regularised
   for 576 features), so that "within 0.02 of the head on all votes" is met by 16–64 votes of
   any order and measures nothing; ``workbench`` is the head ``train_reward_model_from_session``
   fits since 2026-12-07, ``fit_bt_head`` with its L2 chosen by cross-validation over prompts
   (``choose_l2``). **Votes needed** is the first checkpoint whose accuracy is
   within 0.02 of the accuracy of the head fitted on all pool votes (the same number for every
   order of one seed): the issue's "reach". It is read from the **isotonic (non-decreasing)
   least-squares fit** of each learning curve, not from the raw points: with a few hundred test
   pairs one checkpoint's accuracy moves by ±0.02, the whole tolerance, so a single lucky or
   unlucky point used to decide a seed (the ``_raw`` lines keep that reading). Printed per order
   and seed, then ``votes_saved_vs_random: X`` (the median over seeds of votes(random) ÷
   votes(model-uncertain)) with ``votes_saved_vs_random_iqr: [lo, hi]`` and the per-seed ratios,
   and the same against ``active``; the issue's target is 1.5. Beside it, a steadier companion
   (not the issue's figure): each curve's **shortfall area**, the votes × accuracy its isotonic
   fit spends below the all-votes accuracy, and ``shortfall_saved_vs_random``, the median over
   seeds of random's area ÷ model-uncertain's (every checkpoint counts, not one crossing).

   ``random`` is a distribution of orders, and one draw's crossing is itself a lottery (within
   one seed, draws needed 96 to 1,088 votes): ``--random-draws`` random orders are labelled per
   seed (annotators renamed, which reseeds the order) and random's votes needed and area per
   seed are the medians over them (``votes_saved_vs_random_first_draw``: the first draw alone,
   the reading before 2026-12-07). Beside every order, an **oracle bound**: the pool taken in
   order of the hidden margin, clearest pairs first, which no order can know.

   The test set is every pair of every prompt outside the pool: the ``--test-prompts`` held out
   and, with ``--prompts`` under 60, the prompts not drawn (840 test pairs at ``--prompts 40``,
   420 at the default size). ``--orders`` labels with a subset (development runs).

   The hidden preference (``--preference``) is by default a random direction over the top
   ``--preference-dims`` (8) principal components of the answers' features (the directions in
   which these answers differ most, found without votes), so a linear head can learn it;
   ``measured`` uses four measured text features instead (log words, hedges, casual markers
   and example markers per answer), which the mean-pooled features barely encode (a head on all
   votes reaches 0.54–0.70).

2. **Round trip** (``--paced`` annotators, 0 skips it): that many threads label one fresh session
   in the ``active`` order, then one in the ``model-uncertain`` order, each pausing an
   exponential ``--think-ms`` on average between votes and timing vote → next pair (``vote``
   then ``next_item``, in-process, no HTTP) while refits run in the background thread.
   Reported: p50/p99 per order, how many round trips had a refit in flight, the refits done and
   the last one's duration.

The features are the demo model's activations through the workbench's activation cache (the
home's ``cache/activations``; the first run computes them, later runs read them).
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
from sklearn.isotonic import IsotonicRegression

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from peers import load_line, median_iqr, set_threads  # noqa: E402

from workbench.data.demo import load_demo_pairs  # noqa: E402
from workbench.data.types import Pair  # noqa: E402
from workbench.labeling import LabelingStore  # noqa: E402
from workbench.labeling.uncertain import MODEL_UNCERTAIN  # noqa: E402
from workbench.preference.ridge import ridge_loo  # noqa: E402
from workbench.store import Store  # noqa: E402

ORDERS = ("random", "active", MODEL_UNCERTAIN)
MEASURED = ("words", "hedges_per_100_words", "casual_markers_per_100_words", "example_markers")
TOLERANCE = 0.02
TARGET = 1.5
L2 = 1.0  # the reward heads' default


@dataclass(frozen=True)
class Answer:
    prompt: str
    prompt_id: str
    pole: str
    text: str
    measured: tuple[float, ...]


def demo_answers() -> list[Answer]:
    """Every answer of the demo dataset once, in (prompt id, pole) order."""
    out = {}
    for p in load_demo_pairs():
        m = p.metadata
        for side, text in (("a", p.response_a), ("b", p.response_b)):
            f = m[f"{side}_features"]
            out[(m["prompt_id"], m[f"{side}_pole"])] = Answer(p.prompt if isinstance(p.prompt, str) else str(p.prompt), m["prompt_id"],
                                                              m[f"{side}_pole"], text, tuple(float(f[k]) for k in MEASURED))
    return [out[k] for k in sorted(out)]


def all_pairs(answers: list[Answer]) -> tuple[list[Pair], np.ndarray]:
    """Every two answers to one prompt as a pair (sides by a fixed seed), and each pair's (row of A, row of B)."""
    rng = np.random.default_rng(12345)
    by_prompt: dict[str, list[int]] = {}
    for i, a in enumerate(answers):
        by_prompt.setdefault(a.prompt_id, []).append(i)
    pairs, rows = [], []
    for pid in sorted(by_prompt):
        for i, j in combinations(by_prompt[pid], 2):
            if rng.random() < 0.5:
                i, j = j, i
            a, b = answers[i], answers[j]
            pairs.append(Pair(a.prompt, a.text, b.text, id=f"{pid}:{a.pole}~{b.pole}",
                              metadata={"prompt_id": pid, "source_a": a.pole, "source_b": b.pole}))
            rows.append((i, j))
    return pairs, np.array(rows, dtype=np.int64)


def model_features(model: str, layer: int, answers: list[Answer]) -> tuple[np.ndarray, str]:
    """The demo model's mean-pooled residual stream of every answer at ``layer`` (0: the middle), through the cache."""
    from workbench.activations.cache import ActivationCache
    from workbench.models.service import ModelService
    from workbench.preference.reward_heads import featurize
    from workbench.settings import Settings

    settings = Settings()
    lm = ModelService(settings).get(model)
    layer = layer or max(1, lm.n_layers // 2)
    t0 = time.perf_counter()
    feats = featurize(lm, [a.prompt for a in answers], [a.text for a in answers], layer,
                      cache=ActivationCache(settings.cache_dir), batch_size=8)
    print(f"features: {lm.name} layer {layer}, {feats.shape[0]} answers x {feats.shape[1]} dims "
          f"({time.perf_counter() - t0:.1f} s, cache {settings.cache_dir})")
    return feats, f"{lm.name}, layer {layer}"


class Lookup:
    """The sessions' feature source: each pair's two answers' rows of the precomputed features."""

    def __init__(self, answers: list[Answer], feats: np.ndarray, described: str) -> None:
        self.row = {(a.prompt, a.text): i for i, a in enumerate(answers)}
        self.feats, self.described = feats, described

    def __call__(self, model: str, layer: int, pairs: Sequence[Pair]) -> tuple[np.ndarray, np.ndarray, str]:
        ia = [self.row[(p.prompt, p.response_a)] for p in pairs]
        ib = [self.row[(p.prompt, p.response_b)] for p in pairs]
        return self.feats[ia], self.feats[ib], self.described


# -- the evaluation head ------------------------------------------------------------------

def standardise(fa: np.ndarray, fb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    both = np.concatenate([fa, fb])
    return both.mean(0), both.std(0) + 1e-6  # as train_reward_model does over its comparisons


def eval_head(x: np.ndarray, a_wins: np.ndarray, w0: np.ndarray | None = None) -> np.ndarray:
    """``fit_bt_head``'s minimiser (both orientations, C = 1/L2, no intercept), by damped Newton
    from ``w0``: the doubled data makes it Σ log-loss(Δ) + (L2/4)·|w|² on one orientation, and its
    stopping rule is sklearn's (largest gradient entry of fit_bt_head's objective below 1e-4)."""
    y = np.where(a_wins, 1.0, -1.0)
    lam = L2 / 4
    w = np.zeros(x.shape[1]) if w0 is None else w0.copy()

    def objective(v: np.ndarray) -> float:
        return float(np.sum(np.logaddexp(0, -y * (x @ v))) + lam * v @ v)

    value = objective(w)
    for _ in range(100):
        m = y * (x @ w)
        s = 1 / (1 + np.exp(m))  # σ(−m)
        grad = -(x.T @ (y * s)) + 2 * lam * w
        if float(np.max(np.abs(grad))) < 5e-5:  # fit_bt_head's objective is twice this one
            break
        hess = (x.T * (s * (1 - s))) @ x + 2 * lam * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while (new := objective(w - t * step)) > value - 1e-4 * t * float(grad @ step) and t > 1e-6:
            t /= 2
        w, value = w - t * step, new
    return w


def checkpoints(n: int, every: int) -> list[int]:
    """Every ``every`` votes up to 256, every 2·``every`` up to 768, then every 4·``every``, and ``n``."""
    points = [*range(every, min(n, 256) + 1, every), *range(256 + 2 * every, min(n, 768) + 1, 2 * every),
              *range(768 + 4 * every, n + 1, 4 * every), n]
    return sorted({p for p in points if p <= n})


RIDGE_GRID = np.logspace(-1, 5, 25)


def ridge_loo_head(x: np.ndarray, a_wins: np.ndarray) -> tuple[np.ndarray, float]:
    """Ridge regression of ±1 on Δ (no intercept; ``fit_ridge_head``'s model on vote signs), its
    L2 chosen from RIDGE_GRID by the exact leave-one-out squared error (``ridge_loo``)."""
    return ridge_loo(x, np.where(a_wins, 1.0, -1.0), RIDGE_GRID)


def learning_curve(order: list[str], index: dict[str, int], rows: np.ndarray, feats: np.ndarray, a_wins: dict[str, bool],
                   test: np.ndarray, truth: np.ndarray, check_every: int, kind: str = "ridge-loo") -> tuple[list[int], list[float]]:
    """(votes, held-out accuracy) at every checkpoint of one run's vote sequence (and at its end)."""
    points = checkpoints(len(order), check_every)
    accs, w = [], None
    for n in points:
        voted = np.array([index[p] for p in order[:n]])
        fa, fb = feats[rows[voted, 0]], feats[rows[voted, 1]]
        mean, scale = standardise(fa, fb)
        x = (fa - fb) / scale
        wins = np.array([a_wins[p] for p in order[:n]])
        if kind == "workbench":  # the head train_reward_model_from_session fits: L2 cross-validated by prompt
            from workbench.preference.reward_heads import choose_l2, fit_bt_head  # torch: only this head

            prompts = [p.split(":", 1)[0] for p in order[:n]]
            w = fit_bt_head(x, np.zeros_like(x), wins, choose_l2(x, wins, prompts)[0])
        else:
            w = eval_head(x, wins, w) if kind == "bt" else ridge_loo_head(x, wins)[0]
        pred = ((feats[rows[test, 0]] - feats[rows[test, 1]]) / scale) @ w > 0
        accs.append(float(np.mean(pred == truth)))
    return points, accs


def votes_needed(points: list[int], accs: list[float], full: float, *, raw: bool = False) -> int:
    """The first checkpoint at which the learning curve is within TOLERANCE of ``full`` (the
    issue's "reach"), read from the curve's monotone (isotonic, non-decreasing) least-squares fit:
    one checkpoint's ±0.02 of test-set noise then cannot decide it alone. ``raw``: from the noisy
    points themselves (the reading before 2026-12-07)."""
    curve = np.asarray(accs) if raw else IsotonicRegression(increasing=True).fit_transform(points, accs)
    reached = np.flatnonzero(curve >= full - TOLERANCE - 1e-12)
    return points[int(reached[0])] if len(reached) else points[-1]


def shortfall_area(points: list[int], accs: list[float], full: float) -> float:
    """Votes × accuracy the isotonic curve spends below ``full``: Σ over checkpoints of
    max(0, full − curve) times the votes since the previous checkpoint. Every checkpoint counts, not one
    crossing, so it moves less with one point's test noise than ``votes_needed``."""
    curve = IsotonicRegression(increasing=True).fit_transform(points, accs)
    widths = np.diff([0, *points])
    return float(np.sum(np.maximum(0.0, full - curve) * widths))


def check_against_fit_bt_head(x: np.ndarray, a_wins: np.ndarray) -> float:
    """Largest |difference| between eval_head's and fit_bt_head's weights on the same votes."""
    from workbench.preference.reward_heads import fit_bt_head

    return float(np.max(np.abs(eval_head(x, a_wins) - fit_bt_head(x, np.zeros_like(x), a_wins, L2))))


# -- the sessions --------------------------------------------------------------------------

def label(lab: LabelingStore, names: list[str], votes: dict[str, str], limit: int) -> list[str]:
    """Simulated annotators vote in turn through next_item / vote until no pair is left; the pair ids in vote order."""
    order: list[str] = []
    while len(order) < limit:
        moved = False
        for name in names:
            item = lab.next_item("s", name)
            if item is None:
                continue
            # Annotators are slower than a refit: the refit this request queued reads the votes as
            # they are now and is done before this vote lands (waiting after the vote instead left
            # it to thread timing whether the refit saw this vote, and runs were not reproducible).
            if not lab.uncertain.wait(120):
                raise RuntimeError("a model-uncertain refit took over 120 s: the run would depend on thread timing")
            lab.vote("s", name, item.pair.id, votes[item.pair.id], displayed_order=item.displayed_order)
            order.append(item.pair.id)
            moved = True
            if len(order) >= limit:
                break
        if not moved:
            break
    return order


def session_settings(order: str, model: str, layer: int, refit_every: int) -> dict:
    extra = {"uncertainty_model": model, "uncertainty_layer": layer, "refit_every": refit_every} if order == MODEL_UNCERTAIN else {}
    return {"order": order, "overlap": 1, **extra}


@contextmanager
def simulated_session(order: str, pool: list[Pair], lookup: Lookup, args: argparse.Namespace, layer: int,
                      names: list[str]) -> Iterator[LabelingStore]:
    """Session "s" over ``pool`` in a throw-away SQLite store, in ``order``, with ``names`` joined."""
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "workbench.sqlite") as store:
        store.import_pairs("pool", pool)
        lab = LabelingStore(store, features=lookup)
        lab.create_session("s", "pool", session_settings(order, args.model, layer, args.refit_every))
        for name in names:
            lab.join("s", name)
        yield lab


def run_order(order: str, pool: list[Pair], votes: dict[str, str], lookup: Lookup, args: argparse.Namespace, seed: int,
              layer: int, draw: int = 0) -> tuple[list[str], dict]:
    """One labeling run; ``draw`` > 0 renames the annotators, which reseeds the random order (it is salted by name)."""
    names = [f"sim{seed}-{k}" if not draw else f"sim{seed}-r{draw}-{k}" for k in range(args.annotators)]
    with simulated_session(order, pool, lookup, args, layer, names) as lab:
        sequence = label(lab, names, votes, args.max_votes or len(pool))
        return sequence, lab.selection_status("s") or {}


def paced(order: str, pool: list[Pair], votes: dict[str, str], lookup: Lookup, args: argparse.Namespace, layer: int) -> dict:
    """``--paced`` threads label one session at a human-like pace; vote → next pair round trips."""
    names = [f"paced-{k}" for k in range(args.paced)]
    with simulated_session(order, pool, lookup, args, layer, names) as lab:
        trips: list[float] = []
        during: list[bool] = []
        lock = threading.Lock()
        rng_seed = iter(range(1000, 1000 + len(names)))

        def annotate(name: str, rng: np.random.Generator) -> None:
            item = lab.next_item("s", name)
            for _ in range(args.paced_votes):
                if item is None:
                    return
                time.sleep(rng.exponential(args.think_ms / 1000))
                busy = lab.uncertain.busy
                t0 = time.perf_counter()
                lab.vote("s", name, item.pair.id, votes[item.pair.id], displayed_order=item.displayed_order)
                item = lab.next_item("s", name)
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    trips.append(ms)
                    during.append(busy or lab.uncertain.busy)

        threads = [threading.Thread(target=annotate, args=(n, np.random.default_rng(next(rng_seed)))) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        lab.uncertain.wait(120)
        head = lab.uncertain.head(lab.session("s").id)
    return {"trips": trips, "flags": during, "during": sum(during), "head": head}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="hidden preferences, splits and vote draws (at least 5 for a median; "
                                                            "0 runs only the round trip)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--annotators", type=int, default=4)
    parser.add_argument("--beta", type=float, default=2.0, help="how sharply votes follow the hidden preference")
    parser.add_argument("--preference", choices=("model", "measured"), default="model",
                        help="model: the hidden utility is a random linear function of the model's own features, within their "
                             "top --preference-dims principal components over the answers (a head can learn it); measured: of four "
                             "measured text features (words, hedges, casual markers, examples)")
    parser.add_argument("--preference-dims", type=int, default=8,
                        help="principal components the model preference lives in (0: all 576 dimensions, isotropic)")
    parser.add_argument("--check-every", type=int, default=16, help="votes between evaluation checkpoints")
    parser.add_argument("--eval-head", choices=("ridge-loo", "bt", "workbench"), default="ridge-loo",
                        help="the reward head whose held-out accuracy is tracked: ridge-loo (ridge on the vote signs, L2 by exact "
                             "leave-one-out on the votes so far), bt (fit_bt_head's fixed L2 = 1 logistic head) or workbench "
                             "(the head the workbench trains on a session: fit_bt_head with its L2 cross-validated by prompt; "
                             "slower, 0.1–3 s a checkpoint)")
    parser.add_argument("--orders", type=lambda v: v.split(","), default=list(ORDERS),
                        help=f"comma-separated orders to label with (default all: {','.join(ORDERS)}); the ratios need random/active and {MODEL_UNCERTAIN}")
    parser.add_argument("--random-draws", type=int, default=5,
                        help="random orders per seed (annotators renamed, which reseeds the order); random's votes needed per seed is "
                             "the median over them: one draw's crossing varies 3-10x between draws of one seed")
    parser.add_argument("--refit-every", type=int, default=8, help="the model-uncertain session's refit_every")
    parser.add_argument("--prompts", type=int, default=60, help="prompts used per seed (of 60, drawn per seed): fewer is a smaller pool")
    parser.add_argument("--test-prompts", type=int, default=15, help="of those, prompts held out")
    parser.add_argument("--max-votes", type=int, default=0, help="stop each run after this many votes (0: every pool pair)")
    parser.add_argument("--model", default="SmolLM2-135M-Instruct")
    parser.add_argument("--layer", type=int, default=0, help="0: the middle layer")
    parser.add_argument("--paced", type=int, default=20, help="annotators in the round-trip part (0 skips it)")
    parser.add_argument("--paced-votes", type=int, default=30, help="votes per paced annotator")
    parser.add_argument("--think-ms", type=float, default=1000, help="mean pause between a paced annotator's votes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the features (default 1; 0 = one per CPU)")
    args = parser.parse_args()
    if unknown := [o for o in args.orders if o not in ORDERS]:
        parser.error(f"--orders: unknown order(s) {', '.join(unknown)}; choose from {', '.join(ORDERS)}")

    print(f"torch threads: {set_threads(args.threads)}; {load_line()}")
    answers = demo_answers()
    pairs, rows = all_pairs(answers)
    feats, described = model_features(args.model, args.layer, answers)
    layer = int(described.rsplit(" ", 1)[1])
    lookup = Lookup(answers, feats, described)
    prompts = sorted({a.prompt_id for a in answers})
    index = {p.id: k for k, p in enumerate(pairs)}
    print(f"pairs: {len(pairs)} from {len(answers)} answers to {len(prompts)} prompts; per seed {args.prompts} prompts, "
          f"{args.test_prompts} of them held out; "
          f"{args.annotators} simulated annotators, beta {args.beta}, refit_every {args.refit_every}, checkpoints every {args.check_every} votes; "
          f"preference {args.preference}{f' (top {args.preference_dims} components)' if args.preference == 'model' else ''}, "
          f"evaluation head {args.eval_head}")

    if args.seeds:
        votes_saved(args, answers, pairs, rows, feats, lookup, layer, prompts, index)
    if args.paced:
        round_trip(args, pairs, lookup, layer, prompts)


def votes_saved(args: argparse.Namespace, answers: list[Answer], pairs: list[Pair], rows: np.ndarray, feats: np.ndarray,
                lookup: Lookup, layer: int, prompts: list[str], index: dict[str, int]) -> None:
    """Part 1: votes needed per order and seed, and the ratios."""
    if args.preference == "measured":
        basis = np.array([a.measured for a in answers])
        basis[:, 0] = np.log1p(basis[:, 0])
        names = list(MEASURED)
        basis = (basis - basis.mean(0)) / (basis.std(0) + 1e-12)
    else:
        basis, names = (feats - feats.mean(0)) / (feats.std(0) + 1e-12), None
        if args.preference_dims:  # the directions along which these answers differ most (no vote involved)
            values, vectors = np.linalg.eigh(basis.T @ basis)
            basis = basis @ vectors[:, np.argsort(values)[::-1][:args.preference_dims]]
            basis /= basis.std(0)
    orders = [o for o in ORDERS if o in args.orders]
    needed: dict[str, list[float]] = {o: [] for o in [*orders, "oracle"]}
    raw: dict[str, list[float]] = {o: [] for o in [*orders, "oracle"]}
    area: dict[str, list[float]] = {o: [] for o in [*orders, "oracle"]}
    first_draw: list[int] = []  # random's first draw alone (the reading before --random-draws)
    t_start = time.perf_counter()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        rng = np.random.default_rng(seed)
        w = rng.normal(size=basis.shape[1])
        w /= np.linalg.norm(w)
        drawn = rng.permutation(prompts)[:args.prompts]
        pool_prompts = set(drawn[args.test_prompts:])  # test: every other prompt's pairs (with --prompts < 60, the undrawn ones too)
        u = basis @ w
        if names is None:  # 576 random weights: one unit of utility is one sd over the answers (four unit weights give about that)
            u = (u - u.mean()) / u.std()
        margin = u[rows[:, 0]] - u[rows[:, 1]]
        draws = rng.random(len(pairs)) < 1 / (1 + np.exp(-args.beta * margin))
        pool = [p for p in pairs if p.metadata["prompt_id"] in pool_prompts]
        test = np.array([index[p.id] for p in pairs if p.metadata["prompt_id"] not in pool_prompts and margin[index[p.id]] != 0])
        votes = {p.id: "A" if draws[index[p.id]] else "B" for p in pool}
        a_wins = {pid: v == "A" for pid, v in votes.items()}
        agree = np.mean([(votes[p.id] == "A") == (margin[index[p.id]] > 0) for p in pool if margin[index[p.id]] != 0])
        truth = margin[test] > 0
        shown = (dict(zip(names, np.round(w, 2).tolist(), strict=True)) if names else
                 f"a random direction over the top {len(w)} principal components of the model's features" if args.preference_dims else
                 f"a random direction in the {len(w)} feature dims")
        print(f"\nseed {seed}: hidden weights {shown}; "
              f"{len(pool)} pool pairs, {len(test)} test pairs; votes agree with the hidden preference {agree:.3f}")
        curve = (index, rows, feats, a_wins, test, truth, args.check_every, args.eval_head)
        for order in orders:
            found = []
            for draw in range(args.random_draws if order == "random" else 1):
                t0 = time.perf_counter()
                sequence, status = run_order(order, pool, votes, lookup, args, seed, layer, draw)
                extra = f"; {status.get('refits')} refits, {status.get('doing')}" if status else ""
                what = f"{order} #{draw}" if order == "random" and args.random_draws > 1 else order
                print(f"  {what:16s} {len(sequence)} votes in {time.perf_counter() - t0:.1f} s{extra}")
                found.append(measure(what, sequence, curve))
            for table, k in ((needed, 0), (raw, 1), (area, 2)):  # random: the median over its draws
                table[order].append(float(np.median([f[k] for f in found])))
            if order == "random" and args.random_draws > 1:
                first_draw.append(found[0][0])
        # The bound no order can reach: the clearest pairs first, by the hidden margin itself.
        clearest = sorted((p.id for p in pool), key=lambda pid: -abs(margin[index[pid]]))
        for table, value in zip((needed, raw, area), measure("oracle (bound)", clearest, curve), strict=True):
            table["oracle"].append(value)
        if seed == args.first_seed and args.eval_head == "bt":
            first = sequence[:min(len(sequence), 200)]
            sel = np.array([index[p] for p in first])
            fa, fb = feats[rows[sel, 0]], feats[rows[sel, 1]]
            _, scale = standardise(fa, fb)
            diff = check_against_fit_bt_head((fa - fb) / scale, np.array([a_wins[p] for p in first]))
            print(f"  the evaluation head against fit_bt_head on the first {len(first)} votes: max |w difference| {diff:.2e}")
    report(needed, raw, area, first_draw)
    print(f"labeling and curves: {time.perf_counter() - t_start:.0f} s; {load_line()}")


def measure(what: str, sequence: list[str], curve: tuple) -> tuple[int, int, float]:
    """Votes needed (isotonic, raw) and the shortfall area of one vote sequence's learning curve
    (``curve``: ``learning_curve``'s arguments after the sequence); prints the curve."""
    points, accs = learning_curve(sequence, *curve)
    found = (votes_needed(points, accs, accs[-1]), votes_needed(points, accs, accs[-1], raw=True), shortfall_area(points, accs, accs[-1]))
    shown = ", ".join(f"{p}:{a:.3f}" for p, a in zip(points, accs, strict=True) if p in (16, 32, 64, 128, 256, 512) or p == points[-1])
    print(f"  {what:16s} votes_needed {found[0]:5d}, raw {found[1]:5d} (accuracy on all votes {accs[-1]:.3f}, "
          f"best checkpoint {max(accs):.3f}; curve {shown})")
    return found


def ratio_line(name: str, num: list[float], den: list[float]) -> float:
    """Print ``name``: the median over seeds of num ÷ den, its IQR and the per-seed ratios; return the median."""
    with np.errstate(divide="ignore"):  # an area of 0 (at the all-votes accuracy from the first checkpoint): inf
        ratios = np.asarray(num, dtype=float) / np.asarray(den, dtype=float)
    med, q1, q3 = median_iqr(ratios)
    print(f"{name}: {med:.2f}")
    print(f"{name}_iqr: [{q1:.2f}, {q3:.2f}]")
    print(f"{name}_per_seed: {np.round(ratios, 2).tolist()}")
    return med


def report(needed: dict[str, list[float]], raw: dict[str, list[float]], area: dict[str, list[float]], first_draw: list[int]) -> None:
    """Votes needed per order (median, IQR, per seed) and the ratios against random and active;
    then the shortfall areas' ratios (a steadier companion figure, not the issue's), random's
    first draw alone, and the oracle's bound."""
    for label_, table in (("", needed), ("_raw", raw)):
        what = "the isotonic fit of the curve reaches" if not label_ else "a checkpoint first reaches (raw points)"
        print(f"\nvotes needed before {what} a held-out accuracy within {TOLERANCE} of the all-votes head's (per seed; "
              "random: the median of its draws):")
        for order, values in table.items():
            med, q1, q3 = median_iqr(values)
            print(f"{order.replace('-', '_')}_votes_needed{label_}: {med:.0f} (median of {len(values)} seeds, "
                  f"IQR [{q1:.0f}, {q3:.0f}]; {[round(v) for v in values]})")
        for peer in ("random", "active"):
            if table.get(peer) and table.get(MODEL_UNCERTAIN):
                ratio_line(f"votes_saved_vs_{peer}{label_}", table[peer], table[MODEL_UNCERTAIN])
    if area.get("random") and area.get(MODEL_UNCERTAIN):
        print("\nshortfall area (votes x accuracy below the all-votes head's, isotonic curve) per seed: "
              + "; ".join(f"{o} {np.round(v, 1).tolist()}" for o, v in area.items()))
        ratio_line("shortfall_saved_vs_random", area["random"], area[MODEL_UNCERTAIN])
    if needed.get("random"):
        print("\nthe bound: the oracle takes the pairs in order of the hidden margin |u_A - u_B| (clearest first), which no order can know; "
              "its curve can peak above the all-votes accuracy and sag as the near-ties come last, which the isotonic reading "
              "pools (a late reading: see oracle_votes_needed_raw)")
        ratio_line("oracle_votes_saved_vs_random", needed["random"], needed["oracle"])
    if needed.get("random") and needed.get(MODEL_UNCERTAIN):
        if first_draw:
            print("\nrandom's first draw alone (the reading before --random-draws):")
            ratio_line("votes_saved_vs_random_first_draw", first_draw, needed[MODEL_UNCERTAIN])
        saved = float(np.median(np.asarray(needed["random"]) / np.asarray(needed[MODEL_UNCERTAIN])))
        seeds = len(needed["random"])
        verdict = ("met" if saved >= TARGET else "NOT met") if seeds >= 5 else f"not judged: {seeds} seed(s), the target is a median over at least 5"
        print(f"target_votes_saved_vs_random_{TARGET}: {verdict} ({saved:.2f})")


def round_trip(args: argparse.Namespace, pairs: list[Pair], lookup: Lookup, layer: int, prompts: list[str]) -> None:
    """Part 2: vote -> next pair at a human pace, active against model-uncertain."""
    rng = np.random.default_rng(args.first_seed)
    held = set(rng.permutation(prompts)[:args.test_prompts])
    pool = [p for p in pairs if p.metadata["prompt_id"] not in held]
    votes = {p.id: "A" if len(p.response_a) > len(p.response_b) else "B" for p in pool}  # one taste: the longer answer
    print(f"\nround trip, vote -> next pair, in-process: {args.paced} annotators, {args.paced_votes} votes each, "
          f"think {args.think_ms:.0f} ms on average; {load_line()}")
    for order in ("active", MODEL_UNCERTAIN):
        out = paced(order, pool, votes, lookup, args, layer)
        head = out["head"]
        refits = f"; {head.version} refits, last {head.seconds * 1000:.0f} ms on {head.votes} votes" if head else ""
        print(f"{order.replace('-', '_')}_round_trip_ms: p50 {pct(out['trips'], 50):.1f}, p99 {pct(out['trips'], 99):.1f} "
              f"({len(out['trips'])} votes, {out['during']} with a refit in flight{refits})")
        if out["during"]:
            busy = [t for t, b in zip(out["trips"], out["flags"], strict=True) if b]
            idle = [t for t, b in zip(out["trips"], out["flags"], strict=True) if not b]
            print(f"  with a refit in flight: p50 {pct(busy, 50):.1f}, p99 {pct(busy, 99):.1f} ({len(busy)}); "
                  f"without: p50 {pct(idle, 50):.1f}, p99 {pct(idle, 99):.1f} ({len(idle)})")
    print(load_line())


if __name__ == "__main__":
    main()
