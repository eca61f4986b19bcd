"""Active pair selection: ask next about the pair whose outcome is least settled.

Coverage comes first: among the pairs still open to an annotator, those with the fewest
votes go first, so every pair gets its first vote before any gets its second. Within a
coverage level, each pair's P(A wins) gets a Beta posterior whose prior mean is the
Bradley–Terry prediction for its two sources (0.5 when the pair has no source metadata or
the sources are unrated), with a prior weight of two votes; the pair with the largest
posterior variance — the most uncertain outcome — is asked first. Ties count half to
each side. A stable per-annotator hash breaks ties, so annotators spread over pairs.

Every order also goes through ``reserve``: a pair served to an annotator is reserved for them
(a row of ``labeling_leases`` in the store, so every process serving the store sees it) until
they vote or skip, undo, the session closes or reopens, or ``lease_seconds`` pass, and a pair
is served to at most ``overlap`` annotators at a time (votes plus live reservations), so
annotators labeling at once, on one server or several, never spend their time on the same
pair beyond what the overlap asks.

``model-uncertain`` (``rank_uncertain``) keeps the same coverage rule and orders pairs within a
coverage level by a reward head's score (``workbench.labeling.uncertain``); before its first
head it is the active order.

Hidden repeats (``repeat_pick``): a session with ``repeat_share`` > 0 shows each annotator, as
that share of their items, a pair they already voted on, again, with its sides swapped and
nothing said. The repeat is held by a lease like any served pair (``hold``); a lease on a pair
its holder already voted on is a repeat and never counts against the overlap for others.
"""
from __future__ import annotations

import hashlib
import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from workbench.preference.bradley_terry import BTResult

PRIOR_WEIGHT = 2.0
CONFIRM_BATCH = 32  # candidate pairs whose votes one fresh query counts
MIN_REPEAT_GAP = 5  # a repeat is never one of the annotator's last this many voted pairs (while new ones remain)


def posterior_variance(p0: np.ndarray, a_wins: np.ndarray, b_wins: np.ndarray) -> np.ndarray:
    """Variance of Beta(w·p0 + a, w·(1 − p0) + b): high when few votes and a close call."""
    alpha = PRIOR_WEIGHT * p0 + a_wins
    beta = PRIOR_WEIGHT * (1 - p0) + b_wins
    s = alpha + beta
    return alpha * beta / (s**2 * (s + 1))


def random_rank(salt: str, ids: Sequence[str]) -> list[str]:
    """``ids`` in a random order that is stable for one ``salt`` (a session and annotator)."""
    return sorted(ids, key=lambda p: hashlib.sha256(f"rank:{salt}:{p}".encode()).digest())


def open_pairs(ids: Sequence[str], mine: set[str], counts: dict[str, int], overlap: int, gold: dict[str, str]) -> list[str]:
    """The pairs still open to one annotator, in ``ids`` order: not judged by them, and either
    gold (everyone judges those) or short of ``overlap`` votes that count."""
    return [p for p in ids if p not in mine and (p in gold or counts.get(p, 0) < overlap)]


def reserve(conn: Any, sid: int, aid: int, queue: Sequence[str], counts: dict[str, int], overlap: int,
            gold: dict[str, str], seconds: float, now: float) -> str | None:
    """Reserve for annotator ``aid`` the first pair of ``queue`` with room, as a row of
    ``labeling_leases``; return it (None: every open pair is voted on or held up to ``overlap``).

    Runs inside the caller's write transaction (SQLite ``BEGIN IMMEDIATE``; on PostgreSQL the
    store's transaction-level advisory lock, see workbench/db.py), so reading the live leases,
    confirming the vote counts and writing the lease are one step for every process on the
    store: two servers on one home never hand out the same pair beyond the overlap. The
    annotator's own live lease comes first, so a reload shows the same pair. ``counts`` (a snapshot's votes per pair) rule candidates out cheaply; fresh counts, read
    in the transaction a batch at a time, always confirm them: a snapshot with no votes (or
    fewer annotators than the overlap) is no proof, since another process's vote may have
    committed and freed its lease since. Expired leases are deleted on the way.
    """
    conn.execute("DELETE FROM labeling_leases WHERE session_id = ? AND expires_at <= ?", (sid, now))
    # A lease on a pair its holder already voted on is a hidden repeat: it takes no room from others.
    held = dict(conn.execute("SELECT l.annotator_id, l.pair_id FROM labeling_leases l WHERE l.session_id = ? AND NOT EXISTS"
                             " (SELECT 1 FROM labeling_current c WHERE c.session_id = l.session_id AND c.annotator_id = l.annotator_id"
                             " AND c.pair_id = l.pair_id)", (sid,)).fetchall())
    own = held.pop(aid, None)
    others: Counter[str] = Counter(held.values())
    choice = own if own is not None and own in queue else None
    if choice is None:
        room = (p for p in queue if p in gold or counts.get(p, 0) + others[p] < overlap)
        while choice is None and (batch := list(itertools.islice(room, CONFIRM_BATCH))):
            fresh = votes_now(conn, sid, [p for p in batch if p not in gold])
            choice = next((p for p in batch if p in gold or fresh.get(p, 0) + others[p] < overlap), None)
    if choice is None:
        conn.execute("DELETE FROM labeling_leases WHERE session_id = ? AND annotator_id = ?", (sid, aid))
    else:
        conn.execute("INSERT INTO labeling_leases (session_id, annotator_id, pair_id, expires_at) VALUES (?, ?, ?, ?)"
                     " ON CONFLICT (session_id, annotator_id) DO UPDATE SET pair_id = excluded.pair_id, expires_at = excluded.expires_at",
                     (sid, aid, choice, now + seconds))
    return choice


def hold(conn: Any, sid: int, aid: int, pair_id: str, seconds: float, now: float) -> str:
    """Lease ``pair_id`` to annotator ``aid`` (a hidden repeat: no overlap check, they voted on it already)."""
    conn.execute("INSERT INTO labeling_leases (session_id, annotator_id, pair_id, expires_at) VALUES (?, ?, ?, ?)"
                 " ON CONFLICT (session_id, annotator_id) DO UPDATE SET pair_id = excluded.pair_id, expires_at = excluded.expires_at",
                 (sid, aid, pair_id, now + seconds))
    return pair_id


def votes_now(conn: Any, sid: int, pair_ids: list[str]) -> dict[str, int]:
    """Votes that count toward the overlap (skips do not) per pair, for ``pair_ids``."""
    if not pair_ids:
        return {}
    marks = ", ".join("?" * len(pair_ids))
    return dict(conn.execute(f"SELECT pair_id, COUNT(*) FROM labeling_current WHERE session_id = ? AND pair_id IN ({marks})"
                             " AND outcome != 'skip' GROUP BY pair_id", (sid, *pair_ids)).fetchall())


def rank_active(open_ids: Sequence[str], votes: Sequence[tuple[str, str]], sources: dict[str, tuple[str, str]],
                counts: dict[str, int], *, salt: str, bt: BTResult | None = None) -> list[str]:
    """``open_ids`` reordered: fewest votes first, then most uncertain outcome first."""
    a_wins: dict[str, float] = defaultdict(float)
    b_wins: dict[str, float] = defaultdict(float)
    for pid, outcome in votes:
        if outcome == "A":
            a_wins[pid] += 1
        elif outcome == "B":
            b_wins[pid] += 1
        elif outcome == "tie":
            a_wins[pid] += 0.5
            b_wins[pid] += 0.5
    ids = list(open_ids)
    p0 = np.full(len(ids), 0.5)
    if bt is not None:
        rated = set(bt.items)
        for k, pid in enumerate(ids):
            src = sources.get(pid)
            if src and src[0] in rated and src[1] in rated:
                p0[k] = bt.win_probability(*src)
    var = posterior_variance(p0, np.array([a_wins[p] for p in ids]), np.array([b_wins[p] for p in ids]))
    keys = {pid: (counts.get(pid, 0), -round(float(v), 12), hashlib.sha256(f"{salt}:{pid}".encode()).digest())
            for pid, v in zip(ids, var, strict=True)}
    return sorted(ids, key=keys.__getitem__)


def rank_uncertain(open_ids: Sequence[str], counts: dict[str, int], order: dict[str, int], *, salt: str) -> list[str]:
    """``open_ids`` reordered: fewest votes first, then the head's order (``order``: pair id →
    place, 0 first; pairs it does not know go last), a per-annotator hash breaking ties."""
    last = len(order)
    return sorted(open_ids, key=lambda pid: (counts.get(pid, 0), order.get(pid, last),
                                             hashlib.sha256(f"{salt}:{pid}".encode()).digest()))


def repeats_planned(share: float, firsts: int) -> int:
    """How many hidden repeats make ``share`` of the items of an annotator with ``firsts`` first votes to cast."""
    return int(math.floor(share * firsts / (1 - share) + 1e-9)) if share > 0 else 0


def _unit(salt: str) -> float:
    return int.from_bytes(hashlib.sha256(salt.encode()).digest()[:8], "big") / 2**64


def repeat_pick(share: float, mine: Sequence[tuple[str, str]], repeated: set[str], n_repeats: int, left: int, *,
                salt: str) -> tuple[str | None, int]:
    """(the pair to show again now, or None; how many repeats are still to come) for one annotator.

    ``mine`` are their current votes (pair id, outcome) oldest first, ``repeated`` the pairs they
    already saw again (each pair is repeated at most once), ``n_repeats`` how many repeats they
    voted on, ``left`` how many new pairs are still open to them. While new pairs remain, a repeat
    comes when the repeats so far fall short of ``share`` of the items served (plus a stable
    jitter below one item, so repeats do not come at a fixed period), never one of their last
    ``MIN_REPEAT_GAP`` pairs; once no new pair is left, the repeats still due come one after
    another. A skipped pair is never repeated.
    """
    candidates = [pid for pid, outcome in mine if outcome != "skip" and pid not in repeated]
    # Pairs still to come are candidates once voted, so the count (and the total an annotator sees) stays put.
    remaining = max(0, min(repeats_planned(share, len(mine) + left) - n_repeats, len(candidates) + left))
    if not remaining:
        return None, 0
    if left:
        served = len(mine) + n_repeats
        if n_repeats + 1 > share * (served + 1) + _unit(f"jitter:{salt}:{n_repeats}"):
            return None, remaining
        recent = {pid for pid, _ in mine[-MIN_REPEAT_GAP:]}
        candidates = [pid for pid in candidates if pid not in recent]
        if not candidates:
            return None, remaining
    return min(candidates, key=lambda pid: hashlib.sha256(f"repeat:{salt}:{pid}".encode()).digest()), remaining


def stopping_hint(question: dict[str, Any] | None, covered: int, needed: int, precision: float | None = None) -> str:
    """Whether labeling can stop: only when the question is answered (the win rate's interval
    excludes 0.5, or its half-width is within ``precision``), not merely when the planned votes
    exist; otherwise what is missing. ``question`` is a ``rate_summary`` plus ``label`` (who
    against whom), or None when the votes compare no two sources."""
    planned = f"{covered}/{needed} planned votes"
    if question is None or not question["n"]:
        if needed and covered >= needed:
            return f"Every pair has its planned votes ({planned}); no two sources are compared, so there is no verdict to wait for."
        return f"Keep labeling: {planned}, no votes between two sources yet."
    ci = question["ci"]
    where = f"{question['label']}: win rate {question['rate']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] over {question['n']} votes"
    if question["decided"]:
        return f"The question is answered ({where}, the interval excludes 0.5); labeling can stop ({planned})."
    if precision is not None and (ci[1] - ci[0]) / 2 <= precision:
        return f"The requested precision ±{precision:.3f} is reached ({where}); labeling can stop ({planned})."
    more = ("every pair has its planned votes, but " if needed and covered >= needed else f"{planned}; ")
    return f"Keep labeling: {more}{question['note']} ({where})."
